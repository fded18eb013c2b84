//! `report`: one self-contained HTML page of a run, from its records in the datastore alone
//! (local and Kubernetes runs alike, no cluster needed): the graph with each step's state, a
//! timeline of every task's attempts cut into where the time went ([`timeline`]), per-step
//! durations, and each attempt's pod, node, resources and cause, linked to its retries.
//!
//! The page fetches nothing: its styles are inline, it has no script, and its
//! Content-Security-Policy forbids every fetch, so it opens the same from a mail attachment.

mod graph;
pub mod timeline;

use crate::datastore::{Attempt, RunRecord, Status, TaskRecord};
use crate::flow::Flow;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use timeline::{Kind, duration};

/// A task's anchor in the page.
fn task_id(t: &TaskRecord) -> String {
    format!("task-{}-{}", t.step, t.task_id)
}

/// An attempt's anchor in the page.
fn attempt_id(t: &TaskRecord, n: u32) -> String {
    format!("attempt-{}-{}-{n}", t.step, t.task_id)
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Running => "running",
        Status::Succeeded => "succeeded",
        Status::Failed => "failed",
        Status::Killed => "killed",
    }
}

/// `2026-11-29 10:00:05 UTC`.
fn clock(ms: u64) -> String {
    let Ok(t) = k8s_openapi::jiff::Timestamp::from_millisecond(ms as i64) else {
        return ms.to_string();
    };
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Tasks in the flow's order: by stage, then by task id as a number where it is one.
fn ordered<'a>(flow: &Flow, tasks: &'a [TaskRecord]) -> Vec<&'a TaskRecord> {
    let position = |step: &str| {
        flow.steps()
            .position(|d| d.name == step)
            .unwrap_or(usize::MAX)
    };
    let mut out: Vec<&TaskRecord> = tasks.iter().collect();
    out.sort_by(|a, b| {
        (position(&a.step), a.task_id.len(), &a.task_id).cmp(&(
            position(&b.step),
            b.task_id.len(),
            &b.task_id,
        ))
    });
    out
}

/// Where an attempt ran, in words.
fn place(a: &Attempt) -> String {
    match &a.pod {
        Some(p) => format!(
            "pod {}/{} (uid {}){}",
            p.namespace,
            p.name,
            p.uid,
            p.node
                .as_ref()
                .map(|n| format!(" on node {n}"))
                .unwrap_or_else(|| " (never scheduled)".into())
        ),
        None => "local process".into(),
    }
}

/// The time an attempt's `spans` spent in any of `kinds`.
fn time_in(spans: &[timeline::Span], kinds: &[Kind]) -> u64 {
    spans
        .iter()
        .filter(|s| kinds.contains(&s.kind))
        .map(|s| s.to_ms - s.from_ms)
        .sum()
}

/// The page of run `run` of `flow` with its task records, as of `now_ms`.
pub fn html(flow: &Flow, run: &RunRecord, tasks: &[TaskRecord], now_ms: u64) -> String {
    let tasks = ordered(flow, tasks);
    let start = tasks
        .iter()
        .flat_map(|t| &t.attempts)
        .map(|a| a.queued_ms.unwrap_or(a.started_ms))
        .chain([run.started_ms])
        .min()
        .unwrap_or(run.started_ms);
    let end = run
        .finished_ms
        .into_iter()
        .chain(
            tasks
                .iter()
                .flat_map(|t| &t.attempts)
                .map(|a| a.finished_ms.unwrap_or(now_ms)),
        )
        .max()
        .unwrap_or(now_ms)
        .max(start + 1);
    let title = format!("Run {} of flow {}", run.run_id, flow.name());
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy"
                    content="default-src 'none'; style-src 'unsafe-inline'";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "Run " code { (run.run_id) } " of flow " code { (flow.name()) } }
                    p class={ "state " (status_name(run.status)) } {
                        (status_name(run.status))
                        " · started " (clock(run.started_ms))
                        @if let Some(f) = run.finished_ms {
                            " · took " (duration(f.saturating_sub(run.started_ms)))
                        }
                        " · " (tasks.len()) " tasks, "
                        (tasks.iter().map(|t| t.attempts.len()).sum::<usize>()) " attempts"
                    }
                    @if let Some(cause) = &run.cause {
                        p class="cause" { (cause) }
                    }
                }
                section id="graph" {
                    h2 { "Graph" }
                    (graph::svg(flow, &tasks))
                }
                section id="timeline" {
                    h2 { "Timeline" }
                    (timeline_markup(&tasks, start, end, now_ms))
                }
                section id="steps" {
                    h2 { "Steps" }
                    (steps_table(flow, &tasks, now_ms))
                }
                section id="tasks" {
                    h2 { "Tasks and attempts" }
                    @for t in &tasks {
                        (task_markup(t, now_ms))
                    }
                }
            }
        }
    };
    page.into_string()
}

fn timeline_markup(tasks: &[&TaskRecord], start: u64, end: u64, now_ms: u64) -> Markup {
    let span = (end - start) as f64;
    let pct = |ms: u64| (ms.saturating_sub(start)) as f64 * 100.0 / span;
    let ticks = 6u64;
    let attempts = || tasks.iter().flat_map(|t| &t.attempts);
    let seen: Vec<Kind> = attempts()
        .flat_map(|a| timeline::spans(a, now_ms))
        .map(|s| s.kind)
        .collect();
    let on_kubernetes = attempts().any(|a| a.pod.is_some());
    html! {
        div class="legend" {
            @for k in Kind::ALL.into_iter().filter(|k| seen.contains(k)) {
                span class="key" { span class={ "swatch k-" (k.name()) } {} (k.name()) ": " (k.meaning()) }
            }
            span class="key" { span class="swatch k-failed" {} "where an attempt failed (the next one is its retry)" }
            @if on_kubernetes {
                span class="key" { "Kubernetes keeps a pod's times in whole seconds." }
            }
        }
        div class="axis" {
            div class="label" {}
            div class="track" {
                @for i in 0..=ticks {
                    span class="tick" style={ "left:" (format!("{:.3}", i as f64 * 100.0 / ticks as f64)) "%" } {
                        "+" (duration((end - start) * i / ticks))
                    }
                }
            }
        }
        @for t in tasks {
            div class="row" data-task=(task_id(t)) {
                div class="label" { a href={ "#" (task_id(t)) } { (t.step) "/" (t.task_id) } }
                div class="track" {
                    @if t.attempts.is_empty() {
                        span class="note" { @if let Some(r) = &t.reused_from { "reused from run " (r) } @else { "not started" } }
                    }
                    @for a in &t.attempts {
                        @for s in timeline::spans(a, now_ms) {
                            a class={ "span k-" (s.kind.name()) } href={ "#" (attempt_id(t, a.attempt)) }
                                style={ "left:" (format!("{:.3}", pct(s.from_ms))) "%;width:" (format!("{:.3}", (pct(s.to_ms) - pct(s.from_ms)).max(0.15))) "%" }
                                title={ "attempt " (a.attempt) ": " (s.kind.name()) " " (duration(s.to_ms - s.from_ms))
                                    @if let Some(n) = &s.note { ": " (n) } } {}
                        }
                        @if let (Some(f), Some(cause)) = (a.finished_ms, &a.cause) {
                            a class="end failed" href={ "#" (attempt_id(t, a.attempt)) }
                                style={ "left:" (format!("{:.3}", pct(f))) "%" }
                                title={ "attempt " (a.attempt) " failed: " (cause) } {}
                        }
                    }
                }
            }
        }
    }
}

fn steps_table(flow: &Flow, tasks: &[&TaskRecord], now_ms: u64) -> Markup {
    html! {
        table {
            thead { tr { th { "step" } th { "where" } th { "tasks" } th { "succeeded" } th { "failed or killed" }
                th { "attempts" } th { "wall time" } th { "running, summed" } th { "longest task" } } }
            tbody {
                @for d in flow.steps() {
                    @let mine: Vec<&&TaskRecord> = tasks.iter().filter(|t| t.step == d.name).collect();
                    @let attempts: Vec<&Attempt> = mine.iter().flat_map(|t| &t.attempts).collect();
                    @let first = attempts.iter().map(|a| a.started_ms).min();
                    @let last = attempts.iter().map(|a| a.finished_ms.unwrap_or(now_ms)).max();
                    @let longest = mine.iter().filter_map(|t| {
                        let s = t.attempts.first()?.started_ms;
                        let e = t.attempts.last()?.finished_ms.unwrap_or(now_ms);
                        Some(e.saturating_sub(s))
                    }).max();
                    tr {
                        td { code { (d.name) } }
                        td { @if attempts.iter().any(|a| a.pod.is_some()) { "Kubernetes" } @else if attempts.is_empty() { "-" } @else { "local" } }
                        td { (mine.len()) }
                        td { (mine.iter().filter(|t| t.status == Status::Succeeded).count()) }
                        td { (mine.iter().filter(|t| matches!(t.status, Status::Failed | Status::Killed)).count()) }
                        td { (attempts.len()) }
                        td { @if let (Some(f), Some(l)) = (first, last) { (duration(l.saturating_sub(f))) } @else { "-" } }
                        td { (duration(attempts.iter().map(|a| time_in(&timeline::spans(a, now_ms), &[Kind::Running])).sum())) }
                        td { @if let Some(l) = longest { (duration(l)) } @else { "-" } }
                    }
                }
            }
        }
    }
}

fn task_markup(t: &TaskRecord, now_ms: u64) -> Markup {
    let n = t.attempts.len() as u32;
    html! {
        article class={ "task " (status_name(t.status)) } id=(task_id(t)) data-step=(t.step) data-task-id=(t.task_id) {
            h3 { code { (t.step) "/" (t.task_id) } " " span class={ "state " (status_name(t.status)) } { (status_name(t.status)) } }
            @if let Some(r) = &t.reused_from { p { "Reused the finished task of run " code { (r) } "." } }
            @if let Some(o) = &t.output { p class="output" { "output " code { (o) } } }
            @if !t.attempts.is_empty() {
                table {
                    thead { tr { th { "attempt" } th { "where" } th { "resources" } th { "started" } th { "queued" }
                        th { "to start" } th { "running" } th { "end" } th { "retries" } } }
                    tbody {
                        @for a in &t.attempts {
                            @let spans = timeline::spans(a, now_ms);
                            tr class={ "attempt " @if a.cause.is_some() { "failed" } @else if a.finished_ms.is_some() { "succeeded" } @else { "running" } }
                                id=(attempt_id(t, a.attempt)) {
                                td { "#" (a.attempt) }
                                td { (place(a)) }
                                td { @if let Some(r) = a.pod.as_ref().and_then(|p| p.resources.as_ref()) { (r) } @else { "-" } }
                                td { (clock(a.started_ms)) }
                                td { (duration(time_in(&spans, &[Kind::Queued]))) }
                                td {
                                    (duration(time_in(&spans, &[Kind::Launching, Kind::Pending, Kind::Fetching, Kind::Starting])))
                                    @for s in spans.iter().filter(|s| s.note.is_some()) {
                                        br; span class="reason" { "pending: " (s.note.as_deref().unwrap_or_default()) }
                                    }
                                }
                                td { (duration(time_in(&spans, &[Kind::Running]))) }
                                td class="cause" {
                                    @match (&a.cause, a.finished_ms) {
                                        (Some(c), _) => { "failed: " (c) }
                                        (None, Some(_)) => { "succeeded" }
                                        (None, None) => { "not ended" }
                                    }
                                }
                                td {
                                    @if a.attempt > 0 { a href={ "#" (attempt_id(t, a.attempt - 1)) } { "retry of #" (a.attempt - 1) } }
                                    @if a.attempt + 1 < n { @if a.attempt > 0 { br; } a href={ "#" (attempt_id(t, a.attempt + 1)) } { "retried as #" (a.attempt + 1) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

const STYLE: &str = r#"
:root { --ok: #2e7d32; --bad: #c62828; --run: #1565c0; --muted: #6b7280; }
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem; color: #111; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; } h2 { font-size: 1.1rem; margin: 1.6rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
code { font-family: ui-monospace, monospace; }
.state.succeeded { color: var(--ok); } .state.failed, .state.killed { color: var(--bad); }
.state.running { color: var(--run); }
.cause { white-space: pre-wrap; } header .cause { color: var(--bad); }
table { border-collapse: collapse; } th, td { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
tr.attempt.failed td.cause { color: var(--bad); } tr:target { background: #fff6d5; } article:target h3 { background: #fff6d5; }
.reason { color: var(--muted); font-size: .9em; }
.legend { display: flex; flex-wrap: wrap; gap: .3rem 1rem; margin-bottom: .6rem; color: var(--muted); font-size: .85em; }
.swatch { display: inline-block; width: .9rem; height: .9rem; vertical-align: middle; margin-right: .3rem; border-radius: 2px; }
.row, .axis { display: flex; align-items: center; height: 1.3rem; }
.label { width: 12rem; flex: none; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; font-family: ui-monospace, monospace; font-size: .85em; }
.track { position: relative; flex: 1; height: 100%; border-left: 1px solid #ccc; }
.row .track { background: repeating-linear-gradient(90deg, transparent 0 calc(100%/6 - 1px), #eee calc(100%/6 - 1px) calc(100%/6)); }
.tick { position: absolute; font-size: .75em; color: var(--muted); transform: translateX(-50%); white-space: nowrap; }
.tick:first-child { transform: none; } .tick:last-child { transform: translateX(-100%); }
.span { position: absolute; top: 20%; height: 60%; display: block; }
.end { position: absolute; top: 5%; height: 90%; width: 3px; display: block; transform: translateX(-1px); }
.note { position: absolute; left: .4rem; color: var(--muted); font-size: .85em; }
.k-queued { background: #d1d5db; } .k-launching { background: #c4b5fd; } .k-pending { background: #fbbf24; }
.k-fetching { background: #67e8f9; } .k-starting { background: #38bdf8; } .k-running { background: #34a853; }
.k-noticing { background: #a3a3a3; } .end.failed, .k-failed { background: var(--bad); }
svg text { font: 12px system-ui, sans-serif; } svg .name { font-weight: 600; }
svg .node rect { stroke: #555; stroke-width: 1; rx: 6; } svg .edge { stroke: #888; stroke-width: 1.5; fill: none; }
svg .node.succeeded rect { fill: #e3f2e5; } svg .node.failed rect { fill: #fde2e2; }
svg .node.running rect { fill: #e3edfb; } svg .node.not-run rect { fill: #f3f4f6; }
svg .edge-label { fill: var(--muted); font-size: 11px; }
"#;
