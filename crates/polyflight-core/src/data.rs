//! `FlightData` as it travels between the application, the codec and the transports.
//!
//! Small parts (descriptor, IPC header, app_metadata) are `Bytes`; the body is a list of `Bytes`
//! segments. On the way out the segments are the Arrow buffers themselves plus zero padding, so
//! encoding a batch copies no column data; a transport writes them with scatter-gather I/O where
//! it can. On the way in the body is usually one contiguous segment that Arrow arrays point into.

use crate::proto::FlightDescriptor;
use bytes::{Bytes, BytesMut};

/// The body of an IPC message: the concatenation of its segments.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DataBody {
    segments: Vec<Bytes>,
    len: usize,
}

impl DataBody {
    /// An empty body.
    pub fn new() -> Self {
        DataBody::default()
    }

    /// A body made of these segments, in order.
    pub fn from_segments(segments: Vec<Bytes>) -> Self {
        let len = segments.iter().map(Bytes::len).sum();
        DataBody { segments, len }
    }

    /// Appends a segment (empty segments are dropped).
    pub fn push(&mut self, segment: Bytes) {
        if !segment.is_empty() {
            self.len += segment.len();
            self.segments.push(segment);
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments, in order.
    pub fn segments(&self) -> &[Bytes] {
        &self.segments
    }

    /// The body as one contiguous buffer. Free when the body is a single segment (the usual case
    /// on receive); otherwise the segments are copied once into a new buffer.
    pub fn to_contiguous(&self) -> Bytes {
        match self.segments.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut buf = BytesMut::with_capacity(self.len);
                for segment in many {
                    buf.extend_from_slice(segment);
                }
                buf.freeze()
            }
        }
    }
}

impl From<Bytes> for DataBody {
    fn from(bytes: Bytes) -> Self {
        let mut body = DataBody::new();
        body.push(bytes);
        body
    }
}

impl From<Vec<u8>> for DataBody {
    fn from(bytes: Vec<u8>) -> Self {
        DataBody::from(Bytes::from(bytes))
    }
}

impl std::fmt::Debug for DataBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DataBody({} bytes in {} segments)",
            self.len,
            self.segments.len()
        )
    }
}

/// One Flight data message: an optional descriptor (first message of DoPut/DoExchange), the IPC
/// message header (flatbuffer, no continuation/length prefix), app metadata and the IPC body.
/// An empty `data_header` with `app_metadata` set is a metadata-only message.
#[derive(Clone, Default, PartialEq)]
pub struct FlightData {
    /// Present on the first message of DoPut and DoExchange.
    pub flight_descriptor: Option<FlightDescriptor>,
    /// The IPC `Message` flatbuffer (Schema, DictionaryBatch or RecordBatch), or empty.
    pub data_header: Bytes,
    /// Application metadata carried alongside (or instead of) data.
    pub app_metadata: Bytes,
    /// The IPC message body: every buffer padded to a multiple of 8.
    pub data_body: DataBody,
}

impl FlightData {
    /// A message carrying only app metadata.
    pub fn metadata_only(app_metadata: impl Into<Bytes>) -> Self {
        FlightData {
            app_metadata: app_metadata.into(),
            ..Default::default()
        }
    }

    /// A message carrying only a descriptor (how DoExchange clients may open a call).
    pub fn descriptor_only(descriptor: FlightDescriptor) -> Self {
        FlightData {
            flight_descriptor: Some(descriptor),
            ..Default::default()
        }
    }

    /// Sets the descriptor.
    pub fn with_descriptor(mut self, descriptor: FlightDescriptor) -> Self {
        self.flight_descriptor = Some(descriptor);
        self
    }

    /// Sets the app metadata.
    pub fn with_app_metadata(mut self, app_metadata: impl Into<Bytes>) -> Self {
        self.app_metadata = app_metadata.into();
        self
    }

    /// Bytes of IPC data carried (header + body), the figure throughput is measured in.
    pub fn data_len(&self) -> usize {
        self.data_header.len() + self.data_body.len()
    }
}

impl std::fmt::Debug for FlightData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightData")
            .field("flight_descriptor", &self.flight_descriptor)
            .field(
                "data_header",
                &format_args!("{} bytes", self.data_header.len()),
            )
            .field("app_metadata", &self.app_metadata)
            .field("data_body", &self.data_body)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_segments_and_contiguous_view() {
        let mut body = DataBody::new();
        body.push(Bytes::from_static(b"abc"));
        body.push(Bytes::new());
        body.push(Bytes::from_static(b"defgh"));
        assert_eq!(body.len(), 8);
        assert_eq!(body.segments().len(), 2);
        assert_eq!(body.to_contiguous().as_ref(), b"abcdefgh");
        let one = DataBody::from(Bytes::from_static(b"xyz"));
        assert_eq!(one.to_contiguous().as_ptr(), one.segments()[0].as_ptr());
    }
}
