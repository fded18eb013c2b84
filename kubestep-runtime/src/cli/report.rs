//! `report RUN_ID [--output FILE]`: writes the run's HTML page (see [`crate::run_report`]) and
//! prints its path.

use super::Error;
use super::run::DatastoreArgs;
use crate::client::Client;
use crate::flow::Flow;
use crate::report::report;
use std::io::Write;
use std::path::PathBuf;

/// Options of `report`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The run (its id, as `run` printed it).
    run_id: String,
    /// Where to write the page (default: `<flow>-<run id>.html` in the current directory).
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[command(flatten)]
    store: DatastoreArgs,
}

/// Writes the page of run `args.run_id` and prints where.
pub(super) async fn report_page(
    flow: &Flow,
    args: &Args,
    out: &mut dyn Write,
) -> Result<(), Error> {
    crate::datastore::layout::check_segment("run id", &args.run_id).map_err(Error::Unsupported)?;
    let client = Client::new(args.store.open(flow)?);
    let bad = |e: crate::client::Error| Error::Unsupported(report(&e));
    let run = client.run(&args.run_id).await.map_err(bad)?.ok_or_else(|| {
        Error::Unsupported(format!(
            "no run {} of flow `{}` in this datastore; `run` prints each run's id (and --datastore / --datastore-root choose the datastore)",
            args.run_id,
            flow.name()
        ))
    })?;
    let tasks = client.tasks(&args.run_id).await.map_err(bad)?;
    let page = crate::run_report::html(flow, &run, &tasks, crate::datastore::now_ms());
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-{}.html", flow.name(), args.run_id)));
    std::fs::write(&path, page).map_err(|e| {
        Error::Unsupported(format!(
            "cannot write the report to {}: {e}",
            path.display()
        ))
    })?;
    writeln!(out, "{}", path.display())?;
    Ok(())
}
