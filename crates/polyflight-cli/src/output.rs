//! What the verbs print: aligned text tables for people, JSON for scripts, and the pieces both
//! are made of — readable type names (nested types spelled out, `list<string>`,
//! `struct<x: double, y: double>`), sizes in binary units, row counts with separators, and the
//! size a server does not know (`-1` on the wire) as "unknown".

use arrow_schema::{DataType, Field, IntervalUnit, Schema, TimeUnit, UnionMode};
use polyflight::proto::{FlightDescriptor, FlightEndpoint, FlightInfo};
use serde_json::{json, Value};

/// A readable name of an Arrow type, in the style of pyarrow's (`int64`, `string`,
/// `timestamp[us, tz=UTC]`, `list<int32>`, `struct<a: int64, b: string>`, `map<string, int64>`).
pub fn type_name(data_type: &DataType) -> String {
    fn unit(unit: &TimeUnit) -> &'static str {
        match unit {
            TimeUnit::Second => "s",
            TimeUnit::Millisecond => "ms",
            TimeUnit::Microsecond => "us",
            TimeUnit::Nanosecond => "ns",
        }
    }
    fn fields<'a>(fields: impl Iterator<Item = &'a Field>) -> String {
        fields
            .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
            .collect::<Vec<_>>()
            .join(", ")
    }
    match data_type {
        DataType::Null => "null".into(),
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 => "float16".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Timestamp(u, None) => format!("timestamp[{}]", unit(u)),
        DataType::Timestamp(u, Some(tz)) => format!("timestamp[{}, tz={tz}]", unit(u)),
        DataType::Date32 => "date32".into(),
        DataType::Date64 => "date64".into(),
        DataType::Time32(u) => format!("time32[{}]", unit(u)),
        DataType::Time64(u) => format!("time64[{}]", unit(u)),
        DataType::Duration(u) => format!("duration[{}]", unit(u)),
        DataType::Interval(IntervalUnit::YearMonth) => "interval[year_month]".into(),
        DataType::Interval(IntervalUnit::DayTime) => "interval[day_time]".into(),
        DataType::Interval(IntervalUnit::MonthDayNano) => "interval[month_day_nano]".into(),
        DataType::Binary => "binary".into(),
        DataType::FixedSizeBinary(n) => format!("fixed_size_binary[{n}]"),
        DataType::LargeBinary => "large_binary".into(),
        DataType::BinaryView => "binary_view".into(),
        DataType::Utf8 => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        DataType::Utf8View => "string_view".into(),
        DataType::List(f) => format!("list<{}>", type_name(f.data_type())),
        DataType::ListView(f) => format!("list_view<{}>", type_name(f.data_type())),
        DataType::LargeList(f) => format!("large_list<{}>", type_name(f.data_type())),
        DataType::LargeListView(f) => format!("large_list_view<{}>", type_name(f.data_type())),
        DataType::FixedSizeList(f, n) => {
            format!("fixed_size_list<{}>[{n}]", type_name(f.data_type()))
        }
        DataType::Struct(children) => format!("struct<{}>", fields(children.iter().map(|f| &**f))),
        DataType::Union(children, mode) => {
            let mode = match mode {
                UnionMode::Sparse => "sparse_union",
                UnionMode::Dense => "dense_union",
            };
            format!("{mode}<{}>", fields(children.iter().map(|(_, f)| &**f)))
        }
        DataType::Dictionary(keys, values) => format!(
            "dictionary<values={}, indices={}>",
            type_name(values),
            type_name(keys)
        ),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            let bits = match data_type {
                DataType::Decimal32(..) => 32,
                DataType::Decimal64(..) => 64,
                DataType::Decimal128(..) => 128,
                _ => 256,
            };
            format!("decimal{bits}({p}, {s})")
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "map<{}, {}>",
                type_name(kv[0].data_type()),
                type_name(kv[1].data_type())
            ),
            other => format!("map<{}>", type_name(other)),
        },
        DataType::RunEndEncoded(run_ends, values) => format!(
            "run_end_encoded<run_ends={}, values={}>",
            type_name(run_ends.data_type()),
            type_name(values.data_type())
        ),
    }
}

/// `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `512 B`, `1.5 KiB`, `38.1 MiB`, `2.00 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let precision = if value < 10.0 { 2 } else { 1 };
    format!("{value:.precision$} {}", UNITS[unit])
}

/// A size the server may not know (`-1`).
pub fn known(n: i64) -> Option<u64> {
    u64::try_from(n).ok()
}

/// A row count or "unknown".
pub fn rows_text(n: i64) -> String {
    known(n).map(count).unwrap_or_else(|| "unknown".into())
}

/// A byte size or "unknown".
pub fn bytes_text(n: i64) -> String {
    known(n).map(bytes).unwrap_or_else(|| "unknown".into())
}

/// A descriptor as `list` shows it: the path `/`-joined, or `cmd:` and the command.
pub fn descriptor_text(descriptor: Option<&FlightDescriptor>) -> String {
    match descriptor {
        None => "(none)".into(),
        Some(d) if !d.path.is_empty() => d.path.join("/"),
        Some(d) => format!("cmd:{}", printable(&d.cmd)),
    }
}

/// Bytes as text when they are UTF-8 without control characters, else as hex.
pub fn printable(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_string(),
        _ => data.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Columns of text, left-aligned except the columns marked as numbers; a header row first.
pub struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names; a name starting with `>` is right-aligned (the `>` is
    /// not printed).
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.iter().map(|h| h.trim_start_matches('>')).collect(),
            right: header.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, indented by `indent` spaces, each line ending in a newline.
    pub fn render(&self, indent: usize) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.chars().count());
                }
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = " ".repeat(indent);
            for (i, cell) in row.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                let last = i + 1 == row.len();
                if i > 0 {
                    line.push_str("  ");
                }
                if self.right.get(i).copied().unwrap_or(false) {
                    line.push_str(&format!("{cell:>width$}"));
                } else if last {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}"));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A schema as a table of columns: name, type, nullable.
pub fn schema_table(schema: &Schema) -> Table {
    let mut table = Table::new(&["COLUMN", "TYPE", "NULLABLE"]);
    for field in schema.fields() {
        table.row(vec![
            field.name().clone(),
            type_name(field.data_type()),
            if field.is_nullable() { "yes" } else { "no" }.into(),
        ]);
    }
    table
}

/// A schema on one line: `id: int64, name: string`.
pub fn schema_line(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A field as JSON: name, type (as [`type_name`] spells it), nullable, and children for nested
/// types.
pub fn field_json(field: &Field) -> Value {
    let children: Vec<Value> = match field.data_type() {
        DataType::Struct(fields) => fields.iter().map(|f| field_json(f)).collect(),
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| field_json(f)).collect(),
        DataType::List(f)
        | DataType::ListView(f)
        | DataType::LargeList(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => vec![field_json(f)],
        DataType::RunEndEncoded(r, v) => vec![field_json(r), field_json(v)],
        _ => Vec::new(),
    };
    let mut value = json!({
        "name": field.name(),
        "type": type_name(field.data_type()),
        "nullable": field.is_nullable(),
    });
    if !children.is_empty() {
        value["children"] = Value::Array(children);
    }
    value
}

pub fn schema_json(schema: &Schema) -> Value {
    Value::Array(schema.fields().iter().map(|f| field_json(f)).collect())
}

fn endpoint_json(endpoint: &FlightEndpoint) -> Value {
    json!({
        "ticket": endpoint.ticket.as_ref().map(|t| printable(&t.ticket)),
        "locations": endpoint.location.iter().map(|l| l.uri.clone()).collect::<Vec<_>>(),
        "expiration_time": endpoint.expiration_time.as_ref().map(|t| json!({
            "seconds": t.seconds, "nanos": t.nanos,
        })),
    })
}

/// A FlightInfo as JSON: the path (or command), sizes (`null` when unknown), schema, endpoints.
pub fn flight_json(info: &FlightInfo) -> Value {
    let descriptor = info.flight_descriptor.as_ref();
    let schema = info.try_schema();
    json!({
        "path": descriptor.filter(|d| !d.path.is_empty()).map(|d| d.path.join("/")),
        "path_segments": descriptor.map(|d| d.path.clone()).unwrap_or_default(),
        "cmd": descriptor.filter(|d| d.path.is_empty()).map(|d| printable(&d.cmd)),
        "total_records": known(info.total_records),
        "total_bytes": known(info.total_bytes),
        "ordered": info.ordered,
        "schema": schema.as_ref().map(schema_json).unwrap_or(Value::Null),
        "schema_error": schema.as_ref().err().map(|e| e.message().to_string()),
        "endpoints": info.endpoint.iter().map(endpoint_json).collect::<Vec<_>>(),
    })
}

/// A FlightInfo for people: what it is, how big, its endpoints and its schema.
pub fn flight_text(info: &FlightInfo) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "flight     {}\n",
        descriptor_text(info.flight_descriptor.as_ref())
    ));
    out.push_str(&format!("rows       {}\n", rows_text(info.total_records)));
    out.push_str(&format!("size       {}\n", bytes_text(info.total_bytes)));
    out.push_str(&format!(
        "endpoints  {}{}\n",
        info.endpoint.len(),
        if info.ordered { " (ordered)" } else { "" }
    ));
    if !info.endpoint.is_empty() {
        let mut endpoints = Table::new(&[">#", "TICKET", "LOCATIONS"]);
        for (i, endpoint) in info.endpoint.iter().enumerate() {
            let locations: Vec<&str> = endpoint.location.iter().map(|l| l.uri.as_str()).collect();
            endpoints.row(vec![
                (i + 1).to_string(),
                endpoint
                    .ticket
                    .as_ref()
                    .map(|t| shorten(&printable(&t.ticket), 60))
                    .unwrap_or_else(|| "(none)".into()),
                if locations.is_empty() {
                    "(this server)".into()
                } else {
                    locations.join(" ")
                },
            ]);
        }
        out.push_str(&endpoints.render(2));
    }
    match info.try_schema() {
        Ok(schema) => {
            out.push_str(&format!("schema     {} columns\n", schema.fields().len()));
            out.push_str(&schema_table(&schema).render(2));
        }
        Err(err) => out.push_str(&format!("schema     unreadable ({})\n", err.message())),
    }
    out
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn nested_types_read_like_pyarrow() {
        let point = DataType::Struct(
            vec![
                Field::new("x", DataType::Float64, false),
                Field::new("y", DataType::Float64, false),
            ]
            .into(),
        );
        assert_eq!(type_name(&point), "struct<x: double, y: double>");
        let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
        assert_eq!(type_name(&list), "list<string>");
        let map = DataType::Map(
            Arc::new(Field::new(
                "entries",
                DataType::Struct(
                    vec![
                        Field::new("key", DataType::Utf8, false),
                        Field::new("value", DataType::Int64, true),
                    ]
                    .into(),
                ),
                false,
            )),
            false,
        );
        assert_eq!(type_name(&map), "map<string, int64>");
        assert_eq!(
            type_name(&DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            )),
            "timestamp[us, tz=UTC]"
        );
        assert_eq!(
            type_name(&DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8)
            )),
            "dictionary<values=string, indices=int32>"
        );
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(100), "100");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(40 * 1024 * 1024), "40.0 MiB");
        assert_eq!(rows_text(-1), "unknown");
        assert_eq!(bytes_text(-1), "unknown");
    }

    #[test]
    fn tables_align() {
        let mut table = Table::new(&["NAME", ">ROWS", "NOTE"]);
        table.row(vec!["a".into(), "1,000".into(), "x".into()]);
        table.row(vec!["longer".into(), "7".into(), "".into()]);
        assert_eq!(
            table.render(0),
            "NAME     ROWS  NOTE\na       1,000  x\nlonger      7\n"
        );
    }
}
