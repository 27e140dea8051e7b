//! The data sets of the JSON round trip: record batches of every type family archery's
//! `datagen.py` covers, written as integration JSON files by [`crate::json_writer`].
//!
//! Values are deterministic (a fixed-seed generator) so a failure can be reproduced, and every
//! nullable column has nulls. Each data set has two batches of different lengths unless its
//! point is otherwise (zero-length batches, no batches at all).

use crate::failure::{ArrowContext, Failure, Outcome};
use arrow_array::builder::{
    FixedSizeListBuilder, Int32Builder, LargeListBuilder, ListBuilder, MapBuilder, StringBuilder,
};
use arrow_array::types::{Int16Type, Int32Type, Int8Type, UInt16Type, UInt32Type, UInt8Type};
use arrow_array::*;
use arrow_buffer::{i256, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef, TimeUnit, UnionFields};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

type Result<T> = std::result::Result<T, ArrowError>;

/// One data set: a name (the file is `<name>.json`), a schema and its batches.
#[derive(Debug, Clone)]
pub struct DataSet {
    /// The file stem.
    pub name: &'static str,
    /// The schema.
    pub schema: SchemaRef,
    /// The batches.
    pub batches: Vec<RecordBatch>,
}

/// Row counts of the two batches most data sets have.
const LENGTHS: [usize; 2] = [7, 10];

/// A small deterministic generator (64-bit LCG), so data sets are the same on every run.
struct Values(u64);

impl Values {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn int(&mut self, below: u64) -> u64 {
        self.next() % below.max(1)
    }
    fn signed(&mut self, magnitude: i64) -> i64 {
        let span = u64::try_from(magnitude).unwrap_or(0).saturating_mul(2) + 1;
        i64::try_from(self.int(span)).unwrap_or(0) - magnitude
    }
}

/// Null at every fourth slot (and at slot 1, so short arrays have one).
fn valid(i: usize) -> bool {
    i % 4 != 1
}

fn nulls(len: usize) -> Option<NullBuffer> {
    Some(NullBuffer::from((0..len).map(valid).collect::<Vec<_>>()))
}

fn text(v: &mut Values) -> String {
    let len = v.int(20) as usize;
    let alphabet = ['a', 'b', 'c', 'é', 'ß', '中', ' ', 'z', '🙂'];
    (0..len)
        .map(|_| alphabet[v.int(alphabet.len() as u64) as usize])
        .collect()
}

fn bytes(v: &mut Values) -> Vec<u8> {
    let len = v.int(20) as usize;
    (0..len).map(|_| v.int(256) as u8).collect()
}

fn batch(schema: &SchemaRef, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(schema.clone(), columns)
}

/// Builds `lengths.len()` batches with `columns(len, values)`.
fn batches(
    schema: &SchemaRef,
    lengths: &[usize],
    seed: u64,
    mut columns: impl FnMut(usize, &mut Values) -> Result<Vec<ArrayRef>>,
) -> Result<Vec<RecordBatch>> {
    let mut values = Values(seed);
    lengths
        .iter()
        .map(|len| batch(schema, columns(*len, &mut values)?))
        .collect()
}

macro_rules! prim {
    ($array:ty, $len:expr, $v:ident, $value:expr) => {{
        let len = $len;
        Arc::new(<$array>::from(
            (0..len)
                .map(|i| valid(i).then(|| $value))
                .collect::<Vec<_>>(),
        )) as ArrayRef
    }};
}

fn primitive_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("bool_nullable", DataType::Boolean, true),
        Field::new("bool_nonnullable", DataType::Boolean, false),
        Field::new("int8_nullable", DataType::Int8, true),
        Field::new("int16_nullable", DataType::Int16, true),
        Field::new("int32_nullable", DataType::Int32, true),
        Field::new("int32_nonnullable", DataType::Int32, false),
        Field::new("int64_nullable", DataType::Int64, true),
        Field::new("uint8_nullable", DataType::UInt8, true),
        Field::new("uint16_nullable", DataType::UInt16, true),
        Field::new("uint32_nullable", DataType::UInt32, true),
        Field::new("uint64_nullable", DataType::UInt64, true),
        Field::new("float32_nullable", DataType::Float32, true),
        Field::new("float64_nullable", DataType::Float64, true),
    ]))
}

fn primitive_columns(len: usize, v: &mut Values) -> Result<Vec<ArrayRef>> {
    Ok(vec![
        prim!(BooleanArray, len, v, v.int(2) == 1),
        Arc::new(BooleanArray::from(
            (0..len).map(|_| v.int(2) == 1).collect::<Vec<_>>(),
        )),
        prim!(Int8Array, len, v, v.signed(127) as i8),
        prim!(Int16Array, len, v, v.signed(32767) as i16),
        prim!(Int32Array, len, v, v.signed(i64::from(i32::MAX)) as i32),
        Arc::new(Int32Array::from(
            (0..len).map(|_| v.signed(1000) as i32).collect::<Vec<_>>(),
        )),
        prim!(Int64Array, len, v, v.signed(i64::MAX / 2)),
        prim!(UInt8Array, len, v, v.int(256) as u8),
        prim!(UInt16Array, len, v, v.int(65536) as u16),
        prim!(UInt32Array, len, v, v.int(u64::from(u32::MAX)) as u32),
        prim!(UInt64Array, len, v, v.next() << 11),
        prim!(Float32Array, len, v, v.signed(1 << 20) as f32 / 8.0),
        prim!(Float64Array, len, v, v.signed(1 << 40) as f64 / 1024.0),
    ])
}

fn primitive() -> Result<Vec<DataSet>> {
    let schema = primitive_schema();
    Ok(vec![
        DataSet {
            name: "generated_primitive",
            batches: batches(&schema, &LENGTHS, 1, primitive_columns)?,
            schema: schema.clone(),
        },
        DataSet {
            name: "generated_primitive_zerolength",
            batches: batches(&schema, &[0, 0], 2, primitive_columns)?,
            schema: schema.clone(),
        },
        DataSet {
            name: "generated_primitive_no_batches",
            batches: Vec::new(),
            schema,
        },
    ])
}

fn null() -> Result<DataSet> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("null_a", DataType::Null, true),
        Field::new("int_after_null", DataType::Int32, true),
    ]));
    Ok(DataSet {
        name: "generated_null",
        batches: batches(&schema, &LENGTHS, 3, |len, v| {
            Ok(vec![
                Arc::new(NullArray::new(len)),
                prim!(Int32Array, len, v, v.signed(100) as i32),
            ])
        })?,
        schema,
    })
}

fn binary() -> Result<DataSet> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("binary_nullable", DataType::Binary, true),
        Field::new("largebinary_nullable", DataType::LargeBinary, true),
        Field::new("utf8_nullable", DataType::Utf8, true),
        Field::new("utf8_nonnullable", DataType::Utf8, false),
        Field::new("largeutf8_nullable", DataType::LargeUtf8, true),
        Field::new("fixedsizebinary_5", DataType::FixedSizeBinary(5), true),
    ]));
    Ok(DataSet {
        name: "generated_binary",
        batches: batches(&schema, &LENGTHS, 4, |len, v| {
            let bins: Vec<Option<Vec<u8>>> = (0..len).map(|i| valid(i).then(|| bytes(v))).collect();
            let large: Vec<Option<Vec<u8>>> =
                (0..len).map(|i| valid(i).then(|| bytes(v))).collect();
            let fixed: Vec<Option<Vec<u8>>> = (0..len)
                .map(|i| valid(i).then(|| (0..5).map(|_| v.int(256) as u8).collect()))
                .collect();
            Ok(vec![
                Arc::new(BinaryArray::from_iter(bins)),
                Arc::new(LargeBinaryArray::from_iter(large)),
                prim!(StringArray, len, v, text(v)),
                Arc::new(StringArray::from(
                    (0..len).map(|_| text(v)).collect::<Vec<_>>(),
                )),
                prim!(LargeStringArray, len, v, text(v)),
                Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    fixed.into_iter(),
                    5,
                )?),
            ])
        })?,
        schema,
    })
}

fn binary_view() -> Result<DataSet> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("utf8view_nullable", DataType::Utf8View, true),
        Field::new("binaryview_nullable", DataType::BinaryView, true),
    ]));
    Ok(DataSet {
        name: "generated_binary_view",
        batches: batches(&schema, &LENGTHS, 5, |len, v| {
            // Some values are longer than 12 bytes, so they live in data buffers.
            let strings: Vec<Option<String>> = (0..len)
                .map(|i| valid(i).then(|| format!("{}{}", text(v), "x".repeat(i % 3 * 8))))
                .collect();
            let bins: Vec<Option<Vec<u8>>> = (0..len)
                .map(|i| {
                    valid(i).then(|| {
                        let mut b = bytes(v);
                        b.extend(std::iter::repeat_n(7u8, i % 3 * 8));
                        b
                    })
                })
                .collect();
            Ok(vec![
                Arc::new(StringViewArray::from_iter(strings)),
                Arc::new(BinaryViewArray::from_iter(bins)),
            ])
        })?,
        schema,
    })
}

macro_rules! opts {
    ($len:expr, $value:expr) => {
        (0..$len)
            .map(|i| valid(i).then(|| $value))
            .collect::<Vec<_>>()
    };
}

fn decimal() -> Result<DataSet> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("decimal128_3_1", DataType::Decimal128(3, 1), true),
        Field::new("decimal128_38_10", DataType::Decimal128(38, 10), true),
        Field::new("decimal256_76_5", DataType::Decimal256(76, 5), true),
        Field::new("decimal256_10_2", DataType::Decimal256(10, 2), true),
    ]));
    Ok(DataSet {
        name: "generated_decimal",
        batches: batches(&schema, &LENGTHS, 6, |len, v| {
            let small = Decimal128Array::from(opts!(len, i128::from(v.signed(999))));
            let big = Decimal128Array::from(opts!(
                len,
                i128::from(v.signed(i64::MAX)) * i128::from(v.signed(1 << 40))
            ));
            let huge = Decimal256Array::from(opts!(
                len,
                i256::from_i128(i128::from(v.signed(i64::MAX)) << 60)
                    .wrapping_mul(i256::from_i128(i128::from(v.signed(i64::MAX))))
            ));
            let mid = Decimal256Array::from(opts!(
                len,
                i256::from_i128(i128::from(v.signed(9_999_999_999)))
            ));
            Ok(vec![
                Arc::new(small.with_precision_and_scale(3, 1)?),
                Arc::new(big.with_precision_and_scale(38, 10)?),
                Arc::new(huge.with_precision_and_scale(76, 5)?),
                Arc::new(mid.with_precision_and_scale(10, 2)?),
            ])
        })?,
        schema,
    })
}

fn datetime() -> Result<DataSet> {
    use arrow_array::types::*;
    let ts = |unit: TimeUnit, tz: Option<&str>| DataType::Timestamp(unit, tz.map(Arc::from));
    let schema = Arc::new(Schema::new(vec![
        Field::new("date_day", DataType::Date32, true),
        Field::new("date_millisecond", DataType::Date64, true),
        Field::new("time_second", DataType::Time32(TimeUnit::Second), true),
        Field::new(
            "time_millisecond",
            DataType::Time32(TimeUnit::Millisecond),
            true,
        ),
        Field::new(
            "time_microsecond",
            DataType::Time64(TimeUnit::Microsecond),
            true,
        ),
        Field::new(
            "time_nanosecond",
            DataType::Time64(TimeUnit::Nanosecond),
            true,
        ),
        Field::new("ts_second", ts(TimeUnit::Second, None), true),
        Field::new("ts_millisecond", ts(TimeUnit::Millisecond, None), true),
        Field::new("ts_microsecond", ts(TimeUnit::Microsecond, None), true),
        Field::new("ts_nanosecond", ts(TimeUnit::Nanosecond, None), true),
        Field::new(
            "ts_second_tz",
            ts(TimeUnit::Second, Some("Europe/Paris")),
            true,
        ),
        Field::new(
            "ts_millisecond_tz",
            ts(TimeUnit::Millisecond, Some("America/New_York")),
            true,
        ),
        Field::new(
            "ts_microsecond_tz",
            ts(TimeUnit::Microsecond, Some("UTC")),
            true,
        ),
        Field::new(
            "ts_nanosecond_tz",
            ts(TimeUnit::Nanosecond, Some("+05:30")),
            true,
        ),
    ]));
    Ok(DataSet {
        name: "generated_datetime",
        batches: batches(&schema, &LENGTHS, 7, |len, v| {
            let day = 86_400_000i64;
            Ok(vec![
                Arc::new(Date32Array::from(opts!(len, v.signed(100_000) as i32))),
                Arc::new(Date64Array::from(opts!(len, v.signed(100_000) * day))),
                Arc::new(Time32SecondArray::from(opts!(len, v.int(86_400) as i32))),
                Arc::new(Time32MillisecondArray::from(opts!(
                    len,
                    v.int(86_400_000) as i32
                ))),
                Arc::new(Time64MicrosecondArray::from(opts!(
                    len,
                    (v.int(86_400_000_000)) as i64
                ))),
                Arc::new(Time64NanosecondArray::from(opts!(
                    len,
                    (v.int(86_400_000_000_000)) as i64
                ))),
                Arc::new(PrimitiveArray::<TimestampSecondType>::from(opts!(
                    len,
                    v.signed(1 << 34)
                ))),
                Arc::new(PrimitiveArray::<TimestampMillisecondType>::from(opts!(
                    len,
                    v.signed(1 << 44)
                ))),
                Arc::new(PrimitiveArray::<TimestampMicrosecondType>::from(opts!(
                    len,
                    v.signed(1 << 54)
                ))),
                Arc::new(PrimitiveArray::<TimestampNanosecondType>::from(opts!(
                    len,
                    v.signed(1 << 62)
                ))),
                Arc::new(
                    PrimitiveArray::<TimestampSecondType>::from(opts!(len, v.signed(1 << 34)))
                        .with_timezone("Europe/Paris"),
                ),
                Arc::new(
                    PrimitiveArray::<TimestampMillisecondType>::from(opts!(len, v.signed(1 << 44)))
                        .with_timezone("America/New_York"),
                ),
                Arc::new(
                    PrimitiveArray::<TimestampMicrosecondType>::from(opts!(len, v.signed(1 << 54)))
                        .with_timezone("UTC"),
                ),
                Arc::new(
                    PrimitiveArray::<TimestampNanosecondType>::from(opts!(len, v.signed(1 << 62)))
                        .with_timezone("+05:30"),
                ),
            ])
        })?,
        schema,
    })
}

fn interval() -> Result<DataSet> {
    use arrow_array::types::*;
    use arrow_buffer::{IntervalDayTime, IntervalMonthDayNano};
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "interval_year_month",
            DataType::Interval(arrow_schema::IntervalUnit::YearMonth),
            true,
        ),
        Field::new(
            "interval_day_time",
            DataType::Interval(arrow_schema::IntervalUnit::DayTime),
            true,
        ),
        Field::new(
            "interval_month_day_nano",
            DataType::Interval(arrow_schema::IntervalUnit::MonthDayNano),
            true,
        ),
    ]));
    Ok(DataSet {
        name: "generated_interval",
        batches: batches(&schema, &LENGTHS, 8, |len, v| {
            Ok(vec![
                Arc::new(PrimitiveArray::<IntervalYearMonthType>::from(opts!(
                    len,
                    v.signed(1200) as i32
                ))),
                Arc::new(PrimitiveArray::<IntervalDayTimeType>::from(opts!(
                    len,
                    IntervalDayTime::new(v.signed(10_000) as i32, v.signed(86_400_000) as i32)
                ))),
                Arc::new(PrimitiveArray::<IntervalMonthDayNanoType>::from(opts!(
                    len,
                    IntervalMonthDayNano::new(
                        v.signed(1200) as i32,
                        v.signed(10_000) as i32,
                        v.signed(1 << 50)
                    )
                ))),
            ])
        })?,
        schema,
    })
}

fn duration() -> Result<DataSet> {
    use arrow_array::types::*;
    let schema = Arc::new(Schema::new(vec![
        Field::new("duration_s", DataType::Duration(TimeUnit::Second), true),
        Field::new(
            "duration_ms",
            DataType::Duration(TimeUnit::Millisecond),
            true,
        ),
        Field::new(
            "duration_us",
            DataType::Duration(TimeUnit::Microsecond),
            true,
        ),
        Field::new(
            "duration_ns",
            DataType::Duration(TimeUnit::Nanosecond),
            true,
        ),
    ]));
    Ok(DataSet {
        name: "generated_duration",
        batches: batches(&schema, &LENGTHS, 9, |len, v| {
            Ok(vec![
                Arc::new(PrimitiveArray::<DurationSecondType>::from(opts!(
                    len,
                    v.signed(1 << 30)
                ))),
                Arc::new(PrimitiveArray::<DurationMillisecondType>::from(opts!(
                    len,
                    v.signed(1 << 40)
                ))),
                Arc::new(PrimitiveArray::<DurationMicrosecondType>::from(opts!(
                    len,
                    v.signed(1 << 50)
                ))),
                Arc::new(PrimitiveArray::<DurationNanosecondType>::from(opts!(
                    len,
                    v.signed(1 << 60)
                ))),
            ])
        })?,
        schema,
    })
}

fn int_list(len: usize, v: &mut Values) -> ListArray {
    let mut builder = ListBuilder::new(Int32Builder::new());
    for i in 0..len {
        if valid(i) {
            for _ in 0..v.int(4) {
                if v.int(5) == 0 {
                    builder.values().append_null();
                } else {
                    builder.values().append_value(v.signed(1000) as i32);
                }
            }
            builder.append(true);
        } else {
            builder.append(false);
        }
    }
    builder.finish()
}

fn nested() -> Result<DataSet> {
    let item = Arc::new(Field::new("item", DataType::Int32, true));
    let struct_fields = Fields::from(vec![
        Field::new("f1", DataType::Int32, true),
        Field::new("f2", DataType::Utf8, true),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("list_nullable", DataType::List(item.clone()), true),
        Field::new(
            "largelist_nullable",
            DataType::LargeList(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new(
            "fixedsizelist_nullable",
            DataType::FixedSizeList(item, 3),
            true,
        ),
        Field::new(
            "struct_nullable",
            DataType::Struct(struct_fields.clone()),
            true,
        ),
    ]));
    Ok(DataSet {
        name: "generated_nested",
        batches: batches(&schema, &LENGTHS, 10, |len, v| {
            let list = int_list(len, v);
            let mut large = LargeListBuilder::new(StringBuilder::new());
            for i in 0..len {
                for _ in 0..v.int(3) {
                    large.values().append_value(text(v));
                }
                large.append(valid(i));
            }
            let mut fixed = FixedSizeListBuilder::new(Int32Builder::new(), 3);
            for i in 0..len {
                for _ in 0..3 {
                    fixed
                        .values()
                        .append_option((v.int(4) != 0).then(|| v.signed(50) as i32));
                }
                fixed.append(valid(i));
            }
            let structs = StructArray::try_new(
                struct_fields.clone(),
                vec![
                    Arc::new(Int32Array::from(opts!(len, v.signed(100) as i32))),
                    Arc::new(StringArray::from(opts!(len, text(v)))),
                ],
                Some(NullBuffer::from(
                    (0..len).map(|i| i % 3 != 2).collect::<Vec<_>>(),
                )),
            )?;
            Ok(vec![
                Arc::new(list),
                Arc::new(large.finish()),
                Arc::new(fixed.finish()),
                Arc::new(structs),
            ])
        })?,
        schema,
    })
}

fn recursive_nested() -> Result<DataSet> {
    let inner = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
    let struct_fields = Fields::from(vec![Field::new("numbers", inner, true)]);
    let outer = DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(struct_fields.clone()),
        true,
    )));
    let schema = Arc::new(Schema::new(vec![Field::new(
        "lists_of_structs_of_lists",
        outer.clone(),
        true,
    )]));
    Ok(DataSet {
        name: "generated_recursive_nested",
        batches: batches(&schema, &LENGTHS, 11, |len, v| {
            // Each outer list holds two structs.
            let structs_len = len * 2;
            let lists = int_list(structs_len, v);
            let structs = StructArray::try_new(
                struct_fields.clone(),
                vec![Arc::new(lists)],
                nulls(structs_len),
            )?;
            let offsets = OffsetBuffer::new(ScalarBuffer::from(
                (0..=len).map(|i| (i * 2) as i32).collect::<Vec<_>>(),
            ));
            let field = Arc::new(Field::new(
                "item",
                DataType::Struct(struct_fields.clone()),
                true,
            ));
            Ok(vec![Arc::new(ListArray::try_new(
                field,
                offsets,
                Arc::new(structs),
                nulls(len),
            )?)])
        })?,
        schema,
    })
}

fn map() -> Result<DataSet> {
    let make = |len: usize, v: &mut Values| {
        let mut builder = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        for i in 0..len {
            for k in 0..v.int(4) {
                builder.keys().append_value(format!("key{k}"));
                builder
                    .values()
                    .append_option((v.int(3) != 0).then(|| v.signed(100) as i32));
            }
            builder.append(valid(i))?;
        }
        Ok::<_, ArrowError>(builder.finish())
    };
    let mut probe = Values(0);
    let data_type = make(0, &mut probe)?.data_type().clone();
    let schema = Arc::new(Schema::new(vec![Field::new(
        "map_nullable",
        data_type,
        true,
    )]));
    Ok(DataSet {
        name: "generated_map",
        batches: batches(&schema, &LENGTHS, 12, |len, v| {
            Ok(vec![Arc::new(make(len, v)?) as ArrayRef])
        })?,
        schema,
    })
}

fn unions() -> Result<DataSet> {
    let fields = UnionFields::try_new(
        vec![0, 5],
        vec![
            Field::new("int", DataType::Int32, true),
            Field::new("str", DataType::Utf8, true),
        ],
    )?;
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "sparse",
            DataType::Union(fields.clone(), arrow_schema::UnionMode::Sparse),
            true,
        ),
        Field::new(
            "dense",
            DataType::Union(fields.clone(), arrow_schema::UnionMode::Dense),
            true,
        ),
    ]));
    Ok(DataSet {
        name: "generated_union",
        batches: batches(&schema, &LENGTHS, 13, |len, v| {
            let type_ids: Vec<i8> = (0..len)
                .map(|_| if v.int(2) == 0 { 0 } else { 5 })
                .collect();
            let sparse = UnionArray::try_new(
                fields.clone(),
                ScalarBuffer::from(type_ids.clone()),
                None,
                vec![
                    Arc::new(Int32Array::from(opts!(len, v.signed(100) as i32))),
                    Arc::new(StringArray::from(opts!(len, text(v)))),
                ],
            )?;
            let mut offsets = Vec::with_capacity(len);
            let (mut ints, mut strs) = (0i32, 0i32);
            for t in &type_ids {
                if *t == 0 {
                    offsets.push(ints);
                    ints += 1;
                } else {
                    offsets.push(strs);
                    strs += 1;
                }
            }
            let dense = UnionArray::try_new(
                fields.clone(),
                ScalarBuffer::from(type_ids),
                Some(ScalarBuffer::from(offsets)),
                vec![
                    Arc::new(Int32Array::from(opts!(ints as usize, v.signed(100) as i32))),
                    Arc::new(StringArray::from(opts!(strs as usize, text(v)))),
                ],
            )?;
            Ok(vec![Arc::new(sparse), Arc::new(dense)])
        })?,
        schema,
    })
}

fn dict_of<K: arrow_array::types::ArrowDictionaryKeyType>(
    len: usize,
    v: &mut Values,
    values: ArrayRef,
) -> Result<DictionaryArray<K>>
where
    K::Native: TryFrom<u64>,
{
    let size = values.len() as u64;
    let keys: Vec<Option<K::Native>> = (0..len)
        .map(|i| {
            let k = v.int(size);
            valid(i).then(|| K::Native::try_from(k).ok()).flatten()
        })
        .collect();
    DictionaryArray::try_new(keys.into_iter().collect::<PrimitiveArray<K>>(), values)
}

fn dict_type(key: DataType, value: DataType) -> DataType {
    DataType::Dictionary(Box::new(key), Box::new(value))
}

fn words() -> ArrayRef {
    Arc::new(StringArray::from(vec![
        "alpha", "beta", "gamma", "délta", "ε", "", "omega",
    ]))
}

fn dictionary() -> Result<Vec<DataSet>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "dict_int8_utf8",
            dict_type(DataType::Int8, DataType::Utf8),
            true,
        ),
        Field::new(
            "dict_int32_int64",
            dict_type(DataType::Int32, DataType::Int64),
            true,
        ),
        Field::new(
            "dict_int16_binary",
            dict_type(DataType::Int16, DataType::Binary),
            false,
        ),
    ]));
    let numbers: ArrayRef = Arc::new(Int64Array::from(vec![
        Some(1),
        None,
        Some(-3),
        Some(1 << 40),
    ]));
    let blobs: ArrayRef = Arc::new(BinaryArray::from_iter_values([
        b"x".as_slice(),
        b"\x00\xff",
        b"",
    ]));
    let plain = DataSet {
        name: "generated_dictionary",
        batches: batches(&schema, &LENGTHS, 14, |len, v| {
            let binary_keys: Vec<i16> = (0..len).map(|_| v.int(3) as i16).collect();
            Ok(vec![
                Arc::new(dict_of::<Int8Type>(len, v, words())?),
                Arc::new(dict_of::<Int32Type>(len, v, numbers.clone())?),
                Arc::new(DictionaryArray::<Int16Type>::try_new(
                    binary_keys.into(),
                    blobs.clone(),
                )?),
            ])
        })?,
        schema,
    };
    let unsigned_schema = Arc::new(Schema::new(vec![
        Field::new(
            "dict_uint8",
            dict_type(DataType::UInt8, DataType::Utf8),
            true,
        ),
        Field::new(
            "dict_uint16",
            dict_type(DataType::UInt16, DataType::Utf8),
            true,
        ),
        Field::new(
            "dict_uint32",
            dict_type(DataType::UInt32, DataType::Utf8),
            true,
        ),
    ]));
    let unsigned = DataSet {
        name: "generated_dictionary_unsigned",
        batches: batches(&unsigned_schema, &LENGTHS, 15, |len, v| {
            Ok(vec![
                Arc::new(dict_of::<UInt8Type>(len, v, words())?),
                Arc::new(dict_of::<UInt16Type>(len, v, words())?),
                Arc::new(dict_of::<UInt32Type>(len, v, words())?),
            ])
        })?,
        schema: unsigned_schema,
    };
    Ok(vec![plain, unsigned])
}

fn nested_dictionary() -> Result<DataSet> {
    let inner = dict_type(DataType::Int8, DataType::Utf8);
    let list_of_dict = DataType::List(Arc::new(Field::new("str_dict", inner.clone(), true)));
    let struct_fields = Fields::from(vec![
        Field::new("str_dict_a", inner.clone(), true),
        Field::new("str_dict_b", inner.clone(), true),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("list_of_dict", list_of_dict.clone(), true),
        Field::new(
            "dict_of_list_of_dict",
            dict_type(DataType::Int8, list_of_dict.clone()),
            true,
        ),
        Field::new(
            "dict_of_struct_of_dict",
            dict_type(DataType::Int8, DataType::Struct(struct_fields.clone())),
            true,
        ),
    ]));
    let list_field = Arc::new(Field::new("str_dict", inner, true));
    let lists = |len: usize, v: &mut Values| -> Result<ListArray> {
        let values = dict_of::<Int8Type>(len * 2, v, words())?;
        let offsets = OffsetBuffer::new(ScalarBuffer::from(
            (0..=len).map(|i| (i * 2) as i32).collect::<Vec<_>>(),
        ));
        ListArray::try_new(list_field.clone(), offsets, Arc::new(values), nulls(len))
    };
    // The outer dictionaries are the same in every batch: one dictionary per field.
    let mut fixed = Values(99);
    let outer_lists: ArrayRef = Arc::new(lists(5, &mut fixed)?);
    let outer_structs: ArrayRef = Arc::new(StructArray::try_new(
        struct_fields.clone(),
        vec![
            Arc::new(dict_of::<Int8Type>(4, &mut fixed, words())?),
            Arc::new(dict_of::<Int8Type>(4, &mut fixed, words())?),
        ],
        None,
    )?);
    Ok(DataSet {
        name: "generated_nested_dictionary",
        batches: batches(&schema, &LENGTHS, 16, |len, v| {
            Ok(vec![
                Arc::new(lists(len, v)?),
                Arc::new(dict_of::<Int8Type>(len, v, outer_lists.clone())?),
                Arc::new(dict_of::<Int8Type>(len, v, outer_structs.clone())?),
            ])
        })?,
        schema,
    })
}

fn extension() -> Result<DataSet> {
    let uuid =
        Field::new("uuids", DataType::FixedSizeBinary(16), true).with_metadata(HashMap::from([
            ("ARROW:extension:name".to_string(), "arrow.uuid".to_string()),
            ("ARROW:extension:metadata".to_string(), String::new()),
        ]));
    let dict_ext = Field::new("dict_exts", dict_type(DataType::Int8, DataType::Utf8), true)
        .with_metadata(HashMap::from([
            (
                "ARROW:extension:name".to_string(),
                "dict-extension".to_string(),
            ),
            (
                "ARROW:extension:metadata".to_string(),
                "dict-extension-serialized".to_string(),
            ),
        ]));
    let schema = Arc::new(Schema::new(vec![uuid, dict_ext]));
    Ok(DataSet {
        name: "generated_extension",
        batches: batches(&schema, &LENGTHS, 17, |len, v| {
            let ids: Vec<Option<Vec<u8>>> = (0..len)
                .map(|i| valid(i).then(|| (0..16).map(|_| v.int(256) as u8).collect()))
                .collect();
            Ok(vec![
                Arc::new(FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    ids.into_iter(),
                    16,
                )?),
                Arc::new(dict_of::<Int8Type>(len, v, words())?),
            ])
        })?,
        schema,
    })
}

fn custom_metadata() -> Result<DataSet> {
    let schema = Arc::new(Schema::new_with_metadata(
        vec![
            Field::new("sort_of_sorted", DataType::Int32, true)
                .with_metadata(HashMap::from([("k".to_string(), "v".to_string())])),
            Field::new(
                "lists",
                DataType::List(Arc::new(
                    Field::new("item", DataType::Int32, true)
                        .with_metadata(HashMap::from([("child".to_string(), "yes".to_string())])),
                )),
                true,
            ),
        ],
        HashMap::from([("schema-key".to_string(), "schema value ✓".to_string())]),
    ));
    Ok(DataSet {
        name: "generated_custom_metadata",
        batches: batches(&schema, &LENGTHS, 18, |len, v| {
            let field = Arc::new(
                Field::new("item", DataType::Int32, true)
                    .with_metadata(HashMap::from([("child".to_string(), "yes".to_string())])),
            );
            let list = int_list(len, v);
            let (_, offsets, values, nulls) = list.into_parts();
            Ok(vec![
                Arc::new(Int32Array::from(opts!(len, v.signed(9) as i32))),
                Arc::new(ListArray::try_new(field, offsets, values, nulls)?),
            ])
        })?,
        schema,
    })
}

fn list_view() -> Result<DataSet> {
    let item = Arc::new(Field::new("item", DataType::Int32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("listview", DataType::ListView(item.clone()), true),
        Field::new("largelistview", DataType::LargeListView(item.clone()), true),
    ]));
    Ok(DataSet {
        name: "generated_list_view",
        batches: batches(&schema, &LENGTHS, 19, |len, v| {
            let child_len = len * 2 + 3;
            let child = Arc::new(Int32Array::from(opts!(child_len, v.signed(100) as i32)));
            // Views overlap and go out of order, as list views may.
            let offsets: Vec<i32> = (0..len).map(|i| ((i * 7) % (len + 1)) as i32).collect();
            let sizes: Vec<i32> = (0..len)
                .map(|i| if valid(i) { (i % 3) as i32 } else { 0 })
                .collect();
            let small = ListViewArray::try_new(
                item.clone(),
                offsets.clone().into(),
                sizes.clone().into(),
                child.clone(),
                nulls(len),
            )?;
            let large = LargeListViewArray::try_new(
                item.clone(),
                offsets
                    .iter()
                    .map(|o| i64::from(*o))
                    .collect::<Vec<_>>()
                    .into(),
                sizes
                    .iter()
                    .map(|s| i64::from(*s))
                    .collect::<Vec<_>>()
                    .into(),
                child,
                nulls(len),
            )?;
            Ok(vec![Arc::new(small), Arc::new(large)])
        })?,
        schema,
    })
}

fn run_end_encoded() -> Result<DataSet> {
    let values = Arc::new(Field::new("values", DataType::Utf8, true));
    let ree = |width: DataType| {
        DataType::RunEndEncoded(
            Arc::new(Field::new("run_ends", width, false)),
            values.clone(),
        )
    };
    let schema = Arc::new(Schema::new(vec![
        Field::new("ree_int16", ree(DataType::Int16), true),
        Field::new("ree_int32", ree(DataType::Int32), true),
        Field::new("ree_int64", ree(DataType::Int64), true),
    ]));
    Ok(DataSet {
        name: "generated_run_end_encoded",
        batches: batches(&schema, &LENGTHS, 20, |len, v| {
            let runs = |v: &mut Values| {
                let mut ends = Vec::new();
                let mut at = 0usize;
                while at < len {
                    at = (at + 1 + v.int(3) as usize).min(len);
                    ends.push(at);
                }
                ends
            };
            let strings = |n: usize, v: &mut Values| -> ArrayRef {
                Arc::new(StringArray::from(opts!(n, text(v))))
            };
            let e16 = runs(v);
            let s16 = strings(e16.len(), v);
            let e32 = runs(v);
            let s32 = strings(e32.len(), v);
            let e64 = runs(v);
            let s64 = strings(e64.len(), v);
            Ok(vec![
                Arc::new(RunArray::<Int16Type>::try_new(
                    &Int16Array::from(e16.iter().map(|e| *e as i16).collect::<Vec<_>>()),
                    &s16,
                )?),
                Arc::new(RunArray::<Int32Type>::try_new(
                    &Int32Array::from(e32.iter().map(|e| *e as i32).collect::<Vec<_>>()),
                    &s32,
                )?),
                Arc::new(RunArray::<arrow_array::types::Int64Type>::try_new(
                    &Int64Array::from(e64.iter().map(|e| *e as i64).collect::<Vec<_>>()),
                    &s64,
                )?),
            ])
        })?,
        schema,
    })
}

/// Every data set.
pub fn all() -> Result<Vec<DataSet>> {
    let mut sets = primitive()?;
    sets.push(null()?);
    sets.push(binary()?);
    sets.push(binary_view()?);
    sets.push(decimal()?);
    sets.push(datetime()?);
    sets.push(interval()?);
    sets.push(duration()?);
    sets.push(nested()?);
    sets.push(recursive_nested()?);
    sets.push(map()?);
    sets.push(unions()?);
    sets.extend(dictionary()?);
    sets.push(nested_dictionary()?);
    sets.push(extension()?);
    sets.push(custom_metadata()?);
    sets.push(list_view()?);
    sets.push(run_end_encoded()?);
    Ok(sets)
}

/// Writes every data set into `dir` as `<name>.json`; returns the paths, in order.
pub fn write_all(dir: &Path) -> Outcome<Vec<PathBuf>> {
    let sets = all().arrow("generating the data sets")?;
    let mut paths = Vec::with_capacity(sets.len());
    for set in sets {
        let json = crate::json_writer::to_json(&set.schema, &set.batches)
            .arrow(&format!("writing {} as JSON", set.name))?;
        let path = dir.join(format!("{}.json", set.name));
        let text = serde_json::to_string_pretty(&json)
            .map_err(|e| Failure::Check(format!("serializing {}: {e}", set.name)))?;
        std::fs::write(&path, text).map_err(|source| Failure::Io {
            context: format!("writing {}", path.display()),
            source,
        })?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer writes, the reader of `arrow-integration-test` reads back unchanged.
    #[test]
    fn every_data_set_survives_the_json_format() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_all(dir.path()).unwrap();
        let sets = all().unwrap();
        assert_eq!(paths.len(), sets.len());
        for (path, set) in paths.iter().zip(&sets) {
            let read = crate::json_flight::read_json_file(path)
                .unwrap_or_else(|e| panic!("{}: {e}", set.name));
            assert_eq!(*read.schema, *set.schema, "{}: schema", set.name);
            assert_eq!(
                read.batches.len(),
                set.batches.len(),
                "{}: batch count",
                set.name
            );
            for (i, (got, want)) in read.batches.iter().zip(&set.batches).enumerate() {
                for (c, field) in set.schema.fields().iter().enumerate() {
                    assert_eq!(
                        got.column(c).to_data(),
                        want.column(c).to_data(),
                        "{}: batch {i}, column {}",
                        set.name,
                        field.name()
                    );
                }
                assert_eq!(got, want, "{}: batch {i}", set.name);
            }
        }
    }
}
