//! `do_exchange:echo`: DoExchange of the command `echo` sends back every message as it
//! arrives: batches with their app metadata, batches without, and metadata alone. The client
//! writes four batches of an int32 column `x` (ten rows counting up from the batch's index),
//! with app metadata `str(i)` on the even ones only, and after each write reads one message
//! back: the same batch, the same metadata, and none on the odd batches.

use super::{Scenario, ServerParts};
use crate::failure::{check, ArrowContext, CallContext as _, Failure, Outcome};
use crate::peer::Connector;
use arrow_array::{Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use polyflight::codec::{
    DecodedMessage, DecodedPayload, EncoderInput, FlightDataEncoderBuilder, FlightRecordBatchStream,
};
use polyflight::proto::flight_descriptor::DescriptorType;
use polyflight::proto::FlightDescriptor;
use polyflight::{CallContext, FlightData, FlightError, FlightService, FlightStream, Result};
use std::sync::Arc;

/// The scenario.
pub struct DoExchangeEcho;

struct EchoService;

/// What to send back for one received message (schema and dictionary messages need nothing:
/// the encoder sends its own ahead of the batches).
fn echo_of(message: DecodedMessage) -> Option<EncoderInput> {
    let has_metadata = !message.app_metadata.is_empty();
    match message.payload {
        DecodedPayload::RecordBatch(batch) if has_metadata => {
            Some(EncoderInput::BatchWithMetadata(batch, message.app_metadata))
        }
        DecodedPayload::RecordBatch(batch) => Some(EncoderInput::Batch(batch)),
        _ if has_metadata => Some(EncoderInput::Metadata(message.app_metadata)),
        _ => None,
    }
}

#[async_trait]
impl FlightService for EchoService {
    async fn do_exchange(
        &self,
        _ctx: CallContext,
        data: FlightStream<FlightData>,
    ) -> Result<FlightStream<FlightData>> {
        let mut incoming = FlightRecordBatchStream::new(data);
        let first = match incoming.next_message().await {
            Some(first) => first?,
            None => {
                return Err(FlightError::invalid_argument(
                    "Must provide a command descriptor",
                ))
            }
        };
        let descriptor = first.descriptor.clone().unwrap_or_default();
        if descriptor.r#type != DescriptorType::Cmd as i32 {
            return Err(FlightError::invalid_argument(
                "Must provide a command descriptor",
            ));
        }
        if descriptor.cmd.as_ref() != b"echo" {
            return Err(FlightError::unimplemented(format!(
                "Command not implemented: {}",
                String::from_utf8_lossy(&descriptor.cmd)
            )));
        }
        let rest = futures::stream::unfold(incoming, |mut incoming| async move {
            incoming.next_message().await.map(|m| (m, incoming))
        });
        let echoes =
            futures::stream::iter([Ok(first)])
                .chain(rest)
                .filter_map(|message| async move {
                    match message {
                        Ok(message) => echo_of(message).map(Ok),
                        Err(err) => Some(Err(err)),
                    }
                });
        Ok(Box::pin(
            FlightDataEncoderBuilder::new().build_messages(echoes),
        ))
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]))
}

#[async_trait]
impl Scenario for DoExchangeEcho {
    fn name(&self) -> &'static str {
        "do_exchange:echo"
    }

    fn server(&self) -> ServerParts {
        ServerParts::new(EchoService)
    }

    async fn run_client(&self, connector: &Connector) -> Outcome {
        let client = connector.connect().await?;
        let (writer, inputs) = tokio::sync::mpsc::channel::<Result<EncoderInput>>(1);
        let inputs = futures::stream::unfold(inputs, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let upload = FlightDataEncoderBuilder::new()
            .with_flight_descriptor(FlightDescriptor::new_cmd("echo"))
            .with_schema(schema())
            .build_messages(inputs);
        let response = client
            .do_exchange_data(Box::pin(upload))
            .await
            .call("DoExchange(echo)")?;
        let mut replies = FlightRecordBatchStream::from_response(response);
        for i in 0..4i32 {
            let values: Vec<i32> = (i..i + 10).collect();
            let batch = RecordBatch::try_new(schema(), vec![Arc::new(Int32Array::from(values))])
                .arrow("building a batch")?;
            let metadata = Bytes::from(i.to_string());
            let with_metadata = i % 2 == 0;
            let input = if with_metadata {
                EncoderInput::BatchWithMetadata(batch.clone(), metadata.clone())
            } else {
                EncoderInput::Batch(batch.clone())
            };
            writer.send(Ok(input)).await.map_err(|_| {
                Failure::Check(format!(
                    "the exchange ended before batch {i} could be written"
                ))
            })?;
            let (got, got_metadata) = loop {
                let message = replies
                    .next_message()
                    .await
                    .ok_or_else(|| Failure::Check(format!("no reply to batch {i}")))?
                    .call(&format!("reading the reply to batch {i}"))?;
                if let DecodedPayload::RecordBatch(got) = message.payload {
                    break (got, message.app_metadata);
                }
            };
            check(got == batch, || {
                format!("reply to batch {i} differs\nexpected: {batch:?}\nactual: {got:?}")
            })?;
            if with_metadata {
                check(got_metadata == metadata, || {
                    format!(
                        "reply to batch {i}: expected app metadata {:?}, got {:?}",
                        String::from_utf8_lossy(&metadata),
                        String::from_utf8_lossy(&got_metadata)
                    )
                })?;
            } else {
                check(got_metadata.is_empty(), || {
                    format!(
                        "reply to batch {i}: expected no app metadata, got {:?}",
                        String::from_utf8_lossy(&got_metadata)
                    )
                })?;
            }
        }
        drop(writer);
        while let Some(message) = replies.next_message().await {
            let message = message.call("reading the end of the exchange")?;
            if let DecodedPayload::RecordBatch(extra) = message.payload {
                return Err(Failure::Check(format!(
                    "unexpected extra reply after the last batch: {extra:?}"
                )));
            }
        }
        Ok(())
    }
}
