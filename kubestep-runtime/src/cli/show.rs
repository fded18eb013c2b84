//! `show`: the flow's stages, and each step's decorators and resolved settings with sources;
//! `show --graph`: the graph as a Mermaid flowchart.

use super::{Error, WithArgs};
use crate::flow::Flow;
use kubestep_core::StepDecl;
use kubestep_core::resolve::{self, Defaults, WithArg};
use std::io::Write;

/// Options of `show`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Print the graph as a Mermaid flowchart (which GitHub, GitLab and most Markdown viewers
    /// draw), each step with its decorators and where it runs.
    #[arg(long)]
    pub(super) graph: bool,
    #[command(flatten)]
    pub(super) with: WithArgs,
}

fn decorator_line(d: &kubestep_core::Decorator) -> String {
    let args: Vec<String> = d
        .args
        .iter()
        .map(|a| format!("{} = {}", a.key, a.value))
        .collect();
    if args.is_empty() {
        format!("#[{}]", d.kind)
    } else {
        format!("#[{}({})]", d.kind, args.join(", "))
    }
}

fn signature(d: &StepDecl) -> String {
    let asyncness = if d.is_async { "async " } else { "" };
    format!(
        "{asyncness}fn {}({}) -> {}",
        d.name,
        if d.input == "()" { "" } else { d.input },
        d.output
    )
}

pub(super) fn show(
    flow: &Flow,
    defaults: &Defaults,
    with: &[WithArg],
    out: &mut dyn Write,
) -> Result<(), Error> {
    let graph: Vec<String> = flow.stages().iter().map(ToString::to_string).collect();
    writeln!(out, "Flow {}\n\n    {}\n", flow.name(), graph.join(" -> "))?;
    if let Some(p) = flow.params() {
        writeln!(out, "Parameters (options of run and resume):")?;
        for a in (p.augment)(clap::Command::new("params")).get_arguments() {
            let name = a
                .get_long()
                .map_or_else(|| a.get_id().to_string(), |l| format!("--{l}"));
            let help = a.get_help().map(|h| format!("  {h}")).unwrap_or_default();
            let default: Vec<String> = a
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = if default.is_empty() {
                String::new()
            } else {
                format!(" [default: {}]", default.join(","))
            };
            writeln!(out, "    {name}{help}{default}")?;
        }
        writeln!(out)?;
    }
    for d in flow.steps() {
        writeln!(out, "Step {}", d.name)?;
        writeln!(out, "    {}", signature(d))?;
        if !d.doc.is_empty() {
            for line in d.doc.lines() {
                writeln!(out, "    /// {line}")?;
            }
        }
        for dec in d.decorators {
            writeln!(out, "    {}", decorator_line(dec))?;
        }
        if resolve::on_kubernetes(d, with) {
            let r = resolve::resolve(d, defaults, with)?;
            let width = r
                .summary()
                .iter()
                .map(|(k, v, _)| k.len() + v.len())
                .max()
                .unwrap_or(0);
            writeln!(out, "    on Kubernetes:")?;
            for (key, value, source) in r.summary() {
                let pad = width.saturating_sub(key.len() + value.len());
                writeln!(out, "        {key} = {value}{:pad$}   ({source})", "")?;
            }
            if let Some(t) = r.timeout_seconds {
                writeln!(out, "        timeout = {t}s")?;
            }
        } else {
            writeln!(
                out,
                "    runs locally (add #[kubernetes] or --with kubernetes to run it as a Job)"
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Text for inside a quoted Mermaid label: its own entity codes for what would end the label
/// or read as HTML.
fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

/// A step's node id: prefixed, since Mermaid reads a bare `end` (a common last step) as the
/// end of a subgraph.
fn node(step: &str) -> String {
    format!("step_{step}")
}

/// The flow as a Mermaid flowchart: one node per step (its name, decorators and where it runs),
/// an edge from each step of a stage to each of the next, labelled with how the next one runs.
pub(super) fn graph(flow: &Flow, with: &[WithArg], out: &mut dyn Write) -> Result<(), Error> {
    writeln!(out, "flowchart TD")?;
    for d in flow.steps() {
        let mut lines = vec![format!("<b>{}</b>", d.name)];
        lines.extend(
            d.decorators
                .iter()
                .map(|x| mermaid_text(&decorator_line(x))),
        );
        lines.push(
            if resolve::on_kubernetes(d, with) {
                "on Kubernetes"
            } else {
                "local"
            }
            .into(),
        );
        writeln!(out, "    {}[\"{}\"]", node(d.name), lines.join("<br/>"))?;
    }
    for pair in flow.stages().windows(2) {
        let label = pair[1]
            .kind
            .edge_label()
            .map(|l| format!("|{l}|"))
            .unwrap_or_default();
        for a in &pair[0].steps {
            for b in &pair[1].steps {
                writeln!(out, "    {} -->{label} {}", node(a.name), node(b.name))?;
            }
        }
    }
    Ok(())
}
