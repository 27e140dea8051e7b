//! `polyflight list URI` and `polyflight info URI [PATH]`: what a server offers, as tables for
//! people (sizes readable, unknown sizes as "unknown", schemas with nested types spelled out) or
//! as JSON for scripts.

use crate::args::{InfoArgs, ListArgs};
use crate::connect::connect;
use crate::fail::{Failure, Outcome};
use crate::get::path_descriptor;
use crate::output::{
    bytes_text, descriptor_text, flight_json, flight_text, rows_text, schema_line, shorten, Table,
};
use futures::TryStreamExt;
use polyflight::FlightCode;
use serde_json::{json, Value};

/// The widest a schema is shown in `list`'s table; `info PATH` shows all of it.
const SCHEMA_WIDTH: usize = 80;

pub async fn list(args: ListArgs) -> Outcome {
    let server = connect(&args.uri, &args.client).await?;
    let flights: Vec<_> = async {
        server
            .client
            .list_flights(args.criteria.clone().into_bytes())
            .await?
            .try_collect()
            .await
    }
    .await
    .map_err(|err| server.fail(&err))?;
    if args.output.json {
        println!(
            "{}",
            Value::Array(flights.iter().map(flight_json).collect())
        );
        return Ok(());
    }
    if flights.is_empty() {
        println!("no flights on {}", server.uri);
        return Ok(());
    }
    let mut table = Table::new(&["PATH", ">ROWS", ">SIZE", ">ENDPOINTS", "SCHEMA"]);
    for info in &flights {
        let schema = match info.try_schema() {
            Ok(schema) => shorten(&schema_line(&schema), SCHEMA_WIDTH),
            Err(err) => format!("unreadable ({})", err.message()),
        };
        table.row(vec![
            descriptor_text(info.flight_descriptor.as_ref()),
            rows_text(info.total_records),
            bytes_text(info.total_bytes),
            info.endpoint.len().to_string(),
            schema,
        ]);
    }
    print!("{}", table.render(0));
    if !args.output.quiet {
        println!("{} flight(s)", flights.len());
    }
    Ok(())
}

pub async fn info(args: InfoArgs) -> Outcome {
    let server = connect(&args.uri, &args.client).await?;
    let Some(path) = &args.path else {
        let actions = server
            .client
            .list_actions()
            .await
            .map_err(|err| server.fail(&err))?;
        if args.output.json {
            let actions: Vec<Value> = actions
                .iter()
                .map(|a| json!({ "type": a.r#type, "description": a.description }))
                .collect();
            println!("{}", json!({ "server": server.uri, "actions": actions }));
            return Ok(());
        }
        println!("{}: {} action(s)", server.uri, actions.len());
        let mut table = Table::new(&["ACTION", "DESCRIPTION"]);
        for action in &actions {
            table.row(vec![action.r#type.clone(), action.description.clone()]);
        }
        if !actions.is_empty() {
            print!("{}", table.render(2));
        }
        return Ok(());
    };
    let info = server
        .client
        .get_flight_info(path_descriptor(path)?)
        .await
        .map_err(|err| {
            if err.code() == FlightCode::NotFound {
                Failure::not_found(format!("no flight at {path} on {}", server.uri))
            } else {
                server.fail(&err)
            }
        })?;
    if args.output.json {
        println!("{}", flight_json(&info));
    } else {
        print!("{}", flight_text(&info));
    }
    Ok(())
}
