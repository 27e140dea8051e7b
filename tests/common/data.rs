//! Record batches for the tests: a mixed-type batch, a dictionary batch, a large one.

use arrow_array::builder::{Int64Builder, ListBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, StructArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::Arc;

/// A schema with primitives, strings, a list and a struct.
pub fn mixed_schema() -> SchemaRef {
    let list_item = Field::new("item", DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("value", DataType::Float64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("list", DataType::List(Arc::new(list_item)), true),
        Field::new(
            "point",
            DataType::Struct(
                vec![
                    Field::new("x", DataType::Int64, false),
                    Field::new("y", DataType::Int64, false),
                ]
                .into(),
            ),
            true,
        ),
    ]))
}

/// `rows` rows of [`mixed_schema`], values derived from `seed`.
pub fn mixed_batch(rows: usize, seed: i64) -> RecordBatch {
    let ids: Vec<i64> = (0..rows as i64).map(|i| seed * 1_000_000 + i).collect();
    let id = Int64Array::from(ids.clone());
    let value =
        Float64Array::from_iter(ids.iter().map(|i| (i % 7 != 0).then_some(*i as f64 * 0.5)));
    let name = StringArray::from_iter(
        ids.iter()
            .map(|i| (i % 5 != 0).then(|| format!("name-{i}"))),
    );
    let flag = BooleanArray::from_iter(ids.iter().map(|i| (i % 3 != 0).then_some(i % 2 == 0)));
    let mut list = ListBuilder::new(Int64Builder::new());
    for i in &ids {
        if i % 11 == 0 {
            list.append_null();
        } else {
            for j in 0..(i % 4) {
                list.values().append_value(i + j);
            }
            list.append(true);
        }
    }
    let x: ArrayRef = Arc::new(Int64Array::from(ids.clone()));
    let y: ArrayRef = Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| -i)));
    let point = StructArray::from(vec![
        (Arc::new(Field::new("x", DataType::Int64, false)), x),
        (Arc::new(Field::new("y", DataType::Int64, false)), y),
    ]);
    RecordBatch::try_new(
        mixed_schema(),
        vec![
            Arc::new(id),
            Arc::new(value),
            Arc::new(name),
            Arc::new(flag),
            Arc::new(list.finish()),
            Arc::new(point),
        ],
    )
    .expect("valid test batch")
}

/// A schema with a dictionary-encoded string column.
pub fn dict_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "category",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
    ]))
}

/// A dictionary batch whose dictionary values are `words` (so two calls with different words
/// need a dictionary replacement between them).
pub fn dict_batch(rows: usize, words: &[&str]) -> RecordBatch {
    let mut builder = StringDictionaryBuilder::<Int32Type>::new();
    for i in 0..rows {
        if i % 9 == 0 {
            builder.append_null();
        } else {
            builder.append_value(words[i % words.len()]);
        }
    }
    RecordBatch::try_new(
        dict_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(builder.finish()),
        ],
    )
    .expect("valid dictionary batch")
}

/// A schema of `columns` int64 columns.
pub fn int64_schema(columns: usize) -> SchemaRef {
    Arc::new(Schema::new(
        (0..columns)
            .map(|c| Field::new(format!("c{c}"), DataType::Int64, false))
            .collect::<Vec<_>>(),
    ))
}

/// A batch of `columns` int64 columns and `rows` rows.
pub fn int64_batch(rows: usize, columns: usize) -> RecordBatch {
    let arrays: Vec<ArrayRef> = (0..columns)
        .map(|c| {
            Arc::new(Int64Array::from_iter_values(
                (0..rows as i64).map(|i| i * 31 + c as i64),
            )) as ArrayRef
        })
        .collect();
    RecordBatch::try_new(int64_schema(columns), arrays).expect("valid int64 batch")
}

/// Concatenates batches (of one schema) into one, for comparisons that must not depend on how
/// a transport or encoder split the data.
pub fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    arrow_select::concat::concat_batches(schema, batches).expect("batches share a schema")
}
