//! Record batches written as Arrow integration JSON, the format archery's data files use and
//! `arrow-integration-test` reads: a schema, the batches column by column, and the dictionaries.
//!
//! `arrow-integration-test` reads every type but writes only schemas (and those without
//! dictionary ids of our choosing), so the columns are written here. Dictionary ids are given
//! to dictionary fields in depth-first order, the order this writer also meets the dictionary
//! arrays in, so a schema and its batches always agree. Each id's dictionary is taken from the
//! first batch that has it: the data sets of [`crate::datagen`] use one dictionary per field.

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, RecordBatch};
use arrow_buffer::i256;
use arrow_schema::{ArrowError, DataType, Field, IntervalUnit, Schema, UnionMode};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

type Result<T> = std::result::Result<T, ArrowError>;

fn unsupported(data_type: &DataType) -> ArrowError {
    ArrowError::NotYetImplemented(format!("writing {data_type} columns as integration JSON"))
}

/// The whole file: `{"schema", "batches", "dictionaries"}`.
pub fn to_json(schema: &Schema, batches: &[RecordBatch]) -> Result<Value> {
    let mut next_id = 0i64;
    let fields: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| field_json(f, &mut next_id))
        .collect::<Result<_>>()?;
    let mut file = Map::new();
    file.insert(
        "schema".into(),
        json!({ "fields": fields, "metadata": metadata_json(schema.metadata()) }),
    );
    let mut dictionaries = BTreeMap::new();
    let mut json_batches = Vec::with_capacity(batches.len());
    for batch in batches {
        let mut writer = ColumnWriter {
            next_id: 0,
            dictionaries: &mut dictionaries,
        };
        let columns: Vec<Value> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, array)| writer.column(field.name(), array))
            .collect::<Result<_>>()?;
        json_batches.push(json!({ "count": batch.num_rows(), "columns": columns }));
    }
    file.insert("batches".into(), Value::Array(json_batches));
    if !dictionaries.is_empty() {
        let list: Vec<Value> = dictionaries
            .into_iter()
            .map(|(id, data)| json!({ "id": id, "data": data }))
            .collect();
        file.insert("dictionaries".into(), Value::Array(list));
    }
    Ok(Value::Object(file))
}

fn metadata_json<'a>(metadata: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    let mut pairs: Vec<(&String, &String)> = metadata.into_iter().collect();
    pairs.sort();
    Value::Array(
        pairs
            .into_iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect(),
    )
}

/// The child fields the JSON lists under a field of `data_type`.
fn child_fields(data_type: &DataType) -> Vec<&Field> {
    match data_type {
        DataType::Struct(fields) => fields.iter().map(|f| f.as_ref()).collect(),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => vec![f.as_ref()],
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| f.as_ref()).collect(),
        DataType::RunEndEncoded(run_ends, values) => vec![run_ends.as_ref(), values.as_ref()],
        DataType::Dictionary(_, value) => child_fields(value),
        _ => Vec::new(),
    }
}

/// The JSON of a type; `arrow-integration-test` leaves out a union's mode and type ids.
fn type_json(data_type: &DataType) -> Value {
    let mut json = arrow_integration_test::data_type_to_json(data_type);
    if let (DataType::Union(fields, mode), Value::Object(map)) = (data_type, &mut json) {
        let mode = match mode {
            UnionMode::Sparse => "SPARSE",
            UnionMode::Dense => "DENSE",
        };
        map.insert("mode".into(), Value::from(mode));
        let ids: Vec<Value> = fields.iter().map(|(id, _)| Value::from(id)).collect();
        map.insert("typeIds".into(), Value::Array(ids));
    }
    json
}

fn field_json(field: &Field, next_id: &mut i64) -> Result<Value> {
    let mut json = Map::new();
    json.insert("name".into(), Value::from(field.name().as_str()));
    json.insert("nullable".into(), Value::from(field.is_nullable()));
    let value_type = match field.data_type() {
        DataType::Dictionary(index, value) => {
            let id = *next_id;
            *next_id += 1;
            json.insert(
                "dictionary".into(),
                json!({
                    "id": id,
                    "indexType": arrow_integration_test::data_type_to_json(index),
                    "isOrdered": field.dict_is_ordered().unwrap_or(false),
                }),
            );
            value.as_ref()
        }
        other => other,
    };
    json.insert("type".into(), type_json(value_type));
    let children: Vec<Value> = child_fields(field.data_type())
        .into_iter()
        .map(|child| field_json(child, next_id))
        .collect::<Result<_>>()?;
    json.insert("children".into(), Value::Array(children));
    if !field.metadata().is_empty() {
        json.insert("metadata".into(), metadata_json(field.metadata()));
    }
    Ok(Value::Object(json))
}

struct ColumnWriter<'a> {
    next_id: i64,
    dictionaries: &'a mut BTreeMap<i64, Value>,
}

fn validity(array: &dyn Array) -> Value {
    Value::Array(
        (0..array.len())
            .map(|i| Value::from(u8::from(array.is_valid(i))))
            .collect(),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn primitive<T: ArrowPrimitiveType>(
    array: &dyn Array,
    value: impl Fn(T::Native) -> Value,
) -> Value {
    let array = array.as_primitive::<T>();
    Value::Array(array.values().iter().map(|v| value(*v)).collect())
}

fn number<T: Into<serde_json::Number>>(v: T) -> Value {
    Value::Number(v.into())
}

fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn offsets_32(offsets: &[i32]) -> Value {
    Value::Array(offsets.iter().map(|o| number(*o)).collect())
}

fn offsets_64(offsets: &[i64]) -> Value {
    Value::Array(offsets.iter().map(|o| Value::from(o.to_string())).collect())
}

impl ColumnWriter<'_> {
    fn column(&mut self, name: &str, array: &ArrayRef) -> Result<Value> {
        let mut col = Map::new();
        col.insert("name".into(), Value::from(name));
        col.insert("count".into(), Value::from(array.len()));
        let data_type = array.data_type().clone();
        let data: Option<Value> = match &data_type {
            DataType::Null => None,
            DataType::Boolean => Some(Value::Array(
                array
                    .as_boolean()
                    .values()
                    .iter()
                    .map(Value::from)
                    .collect(),
            )),
            DataType::Int8 => Some(primitive::<Int8Type>(array, number)),
            DataType::Int16 => Some(primitive::<Int16Type>(array, number)),
            DataType::Int32 => Some(primitive::<Int32Type>(array, number)),
            DataType::Int64 => Some(primitive::<Int64Type>(array, |v| v.to_string().into())),
            DataType::UInt8 => Some(primitive::<UInt8Type>(array, number)),
            DataType::UInt16 => Some(primitive::<UInt16Type>(array, number)),
            DataType::UInt32 => Some(primitive::<UInt32Type>(array, number)),
            DataType::UInt64 => Some(primitive::<UInt64Type>(array, |v| v.to_string().into())),
            DataType::Float16 => return Err(unsupported(&data_type)),
            DataType::Float32 => Some(primitive::<Float32Type>(array, |v| float(f64::from(v)))),
            DataType::Float64 => Some(primitive::<Float64Type>(array, float)),
            DataType::Date32 => Some(primitive::<Date32Type>(array, number)),
            DataType::Date64 => Some(primitive::<Date64Type>(array, |v| v.to_string().into())),
            DataType::Time32(_) | DataType::Interval(IntervalUnit::YearMonth) => {
                let data = arrow_cast_i32(array)?;
                Some(Value::Array(data.into_iter().map(number).collect()))
            }
            DataType::Time64(_) | DataType::Timestamp(_, _) | DataType::Duration(_) => {
                let data = arrow_cast_i64(array)?;
                Some(Value::Array(
                    data.into_iter().map(|v| v.to_string().into()).collect(),
                ))
            }
            DataType::Interval(IntervalUnit::DayTime) => Some(primitive::<IntervalDayTimeType>(
                array,
                |v| json!({ "days": v.days, "milliseconds": v.milliseconds }),
            )),
            DataType::Interval(IntervalUnit::MonthDayNano) => {
                Some(primitive::<IntervalMonthDayNanoType>(
                    array,
                    |v| json!({ "months": v.months, "days": v.days, "nanoseconds": v.nanoseconds }),
                ))
            }
            DataType::Decimal32(_, _) => {
                Some(primitive::<Decimal32Type>(array, |v| v.to_string().into()))
            }
            DataType::Decimal64(_, _) => {
                Some(primitive::<Decimal64Type>(array, |v| v.to_string().into()))
            }
            DataType::Decimal128(_, _) => {
                Some(primitive::<Decimal128Type>(array, |v| v.to_string().into()))
            }
            DataType::Decimal256(_, _) => Some(primitive::<Decimal256Type>(array, |v: i256| {
                v.to_string().into()
            })),
            DataType::Binary => {
                let a = array.as_binary::<i32>();
                col.insert("OFFSET".into(), offsets_32(a.value_offsets()));
                Some(Value::Array(
                    (0..a.len()).map(|i| hex(a.value(i)).into()).collect(),
                ))
            }
            DataType::LargeBinary => {
                let a = array.as_binary::<i64>();
                col.insert("OFFSET".into(), offsets_64(a.value_offsets()));
                Some(Value::Array(
                    (0..a.len()).map(|i| hex(a.value(i)).into()).collect(),
                ))
            }
            DataType::Utf8 => {
                let a = array.as_string::<i32>();
                col.insert("OFFSET".into(), offsets_32(a.value_offsets()));
                Some(Value::Array(
                    (0..a.len()).map(|i| a.value(i).into()).collect(),
                ))
            }
            DataType::LargeUtf8 => {
                let a = array.as_string::<i64>();
                col.insert("OFFSET".into(), offsets_64(a.value_offsets()));
                Some(Value::Array(
                    (0..a.len()).map(|i| a.value(i).into()).collect(),
                ))
            }
            DataType::FixedSizeBinary(_) => {
                let a = array.as_fixed_size_binary();
                Some(Value::Array(
                    (0..a.len()).map(|i| hex(a.value(i)).into()).collect(),
                ))
            }
            DataType::Utf8View | DataType::BinaryView => {
                let utf8 = data_type == DataType::Utf8View;
                let (views, buffers) = if utf8 {
                    let a = array.as_string_view();
                    (a.views().clone(), a.data_buffers().to_vec())
                } else {
                    let a = array.as_binary_view();
                    (a.views().clone(), a.data_buffers().to_vec())
                };
                let mut list = Vec::with_capacity(views.len());
                for (i, raw) in views.iter().enumerate() {
                    let len = *raw as u32;
                    if array.is_null(i) {
                        list.push(json!({ "SIZE": 0, "INLINED": "" }));
                    } else if len <= 12 {
                        let bytes = raw.to_le_bytes();
                        let inline = &bytes[4..4 + len as usize];
                        let inlined: Value = if utf8 {
                            String::from_utf8_lossy(inline).into_owned().into()
                        } else {
                            hex(inline).into()
                        };
                        list.push(json!({ "SIZE": len, "INLINED": inlined }));
                    } else {
                        let view = arrow_data::ByteView::from(*raw);
                        list.push(json!({
                            "SIZE": len,
                            "PREFIX_HEX": hex(&view.prefix.to_le_bytes()),
                            "BUFFER_INDEX": view.buffer_index,
                            "OFFSET": view.offset,
                        }));
                    }
                }
                col.insert("VIEWS".into(), Value::Array(list));
                col.insert(
                    "VARIADIC_DATA_BUFFERS".into(),
                    Value::Array(buffers.iter().map(|b| hex(b.as_slice()).into()).collect()),
                );
                None
            }
            DataType::List(field) => {
                let a = array.as_list::<i32>();
                col.insert("OFFSET".into(), offsets_32(a.value_offsets()));
                let child = self.column(field.name(), a.values())?;
                col.insert("children".into(), Value::Array(vec![child]));
                None
            }
            DataType::LargeList(field) => {
                let a = array.as_list::<i64>();
                col.insert("OFFSET".into(), offsets_64(a.value_offsets()));
                let child = self.column(field.name(), a.values())?;
                col.insert("children".into(), Value::Array(vec![child]));
                None
            }
            DataType::ListView(field) => {
                let a = array.as_list_view::<i32>();
                col.insert("OFFSET".into(), offsets_32(a.value_offsets()));
                col.insert("SIZE".into(), offsets_32(a.value_sizes()));
                let child = self.column(field.name(), a.values())?;
                col.insert("children".into(), Value::Array(vec![child]));
                None
            }
            DataType::LargeListView(field) => {
                let a = array.as_list_view::<i64>();
                col.insert("OFFSET".into(), offsets_64(a.value_offsets()));
                col.insert("SIZE".into(), offsets_64(a.value_sizes()));
                let child = self.column(field.name(), a.values())?;
                col.insert("children".into(), Value::Array(vec![child]));
                None
            }
            DataType::FixedSizeList(field, _) => {
                let a = array.as_fixed_size_list();
                let child = self.column(field.name(), a.values())?;
                col.insert("children".into(), Value::Array(vec![child]));
                None
            }
            DataType::Map(field, _) => {
                let a = array.as_map();
                col.insert("OFFSET".into(), offsets_32(a.value_offsets()));
                let entries: ArrayRef = std::sync::Arc::new(a.entries().clone());
                let child = self.column(field.name(), &entries)?;
                col.insert("children".into(), Value::Array(vec![child]));
                None
            }
            DataType::Struct(fields) => {
                let a = array.as_struct();
                let children: Vec<Value> = fields
                    .iter()
                    .zip(a.columns())
                    .map(|(f, c)| self.column(f.name(), c))
                    .collect::<Result<_>>()?;
                col.insert("children".into(), Value::Array(children));
                None
            }
            DataType::Union(fields, mode) => {
                let a = array.as_union();
                col.insert(
                    "TYPE_ID".into(),
                    Value::Array(a.type_ids().iter().map(|t| number(*t)).collect()),
                );
                if *mode == UnionMode::Dense {
                    let offsets = a.offsets().ok_or_else(|| {
                        ArrowError::InvalidArgumentError("dense union without offsets".into())
                    })?;
                    col.insert("OFFSET".into(), offsets_32(offsets));
                }
                let children: Vec<Value> = fields
                    .iter()
                    .map(|(id, f)| self.column(f.name(), a.child(id)))
                    .collect::<Result<_>>()?;
                col.insert("children".into(), Value::Array(children));
                // A union has no validity bitmap of its own.
                return Ok(Value::Object(col));
            }
            DataType::RunEndEncoded(run_ends_field, values_field) => {
                macro_rules! runs {
                    ($t:ty, $a:ty) => {{
                        let a = array.as_run::<$t>();
                        let ends: ArrayRef =
                            std::sync::Arc::new(<$a>::from(a.run_ends().values().to_vec()));
                        (ends, a.values().clone())
                    }};
                }
                let (run_ends, values): (ArrayRef, ArrayRef) = match run_ends_field.data_type() {
                    DataType::Int16 => runs!(Int16Type, arrow_array::Int16Array),
                    DataType::Int32 => runs!(Int32Type, arrow_array::Int32Array),
                    DataType::Int64 => runs!(Int64Type, arrow_array::Int64Array),
                    other => return Err(unsupported(other)),
                };
                let children = vec![
                    self.column(run_ends_field.name(), &run_ends)?,
                    self.column(values_field.name(), &values)?,
                ];
                col.insert("children".into(), Value::Array(children));
                // Run-end encoded arrays have no validity bitmap of their own.
                return Ok(Value::Object(col));
            }
            DataType::Dictionary(key, _) => {
                let id = self.next_id;
                self.next_id += 1;
                let (keys, values) = dictionary_parts(array, key)?;
                let values_json = self.column("DICT", &values)?;
                self.dictionaries
                    .entry(id)
                    .or_insert_with(|| json!({ "count": values.len(), "columns": [values_json] }));
                let keys_json = self.column(name, &keys)?;
                return Ok(keys_json);
            }
        };
        if data_type != DataType::Null {
            col.insert("VALIDITY".into(), validity(array.as_ref()));
        }
        if let Some(data) = data {
            col.insert("DATA".into(), data);
        }
        Ok(Value::Object(col))
    }
}

fn arrow_cast_i32(array: &ArrayRef) -> Result<Vec<i32>> {
    let data = array.to_data();
    let buffer = data
        .buffers()
        .first()
        .ok_or_else(|| ArrowError::InvalidArgumentError("array without a value buffer".into()))?;
    let values: &[i32] = buffer.typed_data();
    Ok(values[data.offset()..data.offset() + data.len()].to_vec())
}

fn arrow_cast_i64(array: &ArrayRef) -> Result<Vec<i64>> {
    let data = array.to_data();
    let buffer = data
        .buffers()
        .first()
        .ok_or_else(|| ArrowError::InvalidArgumentError("array without a value buffer".into()))?;
    let values: &[i64] = buffer.typed_data();
    Ok(values[data.offset()..data.offset() + data.len()].to_vec())
}

/// The keys (as a plain integer array with the dictionary's validity) and the values of a
/// dictionary array.
fn dictionary_parts(array: &ArrayRef, key: &DataType) -> Result<(ArrayRef, ArrayRef)> {
    macro_rules! parts {
        ($t:ty) => {{
            let a = array.as_dictionary::<$t>();
            let keys: ArrayRef = std::sync::Arc::new(a.keys().clone());
            (keys, a.values().clone())
        }};
    }
    Ok(match key {
        DataType::Int8 => parts!(Int8Type),
        DataType::Int16 => parts!(Int16Type),
        DataType::Int32 => parts!(Int32Type),
        DataType::Int64 => parts!(Int64Type),
        DataType::UInt8 => parts!(UInt8Type),
        DataType::UInt16 => parts!(UInt16Type),
        DataType::UInt32 => parts!(UInt32Type),
        DataType::UInt64 => parts!(UInt64Type),
        other => return Err(unsupported(other)),
    })
}
