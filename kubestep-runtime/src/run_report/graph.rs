//! The flow's graph as inline SVG: one row per stage, each step a box with its state in this
//! run (tasks succeeded and failed, where they ran), an edge from each step of a stage to each
//! of the next, labelled as `show --graph` labels it. Drawn here rather than by a graph
//! library in the browser, so the page needs no script.

use crate::datastore::{Status, TaskRecord};
use crate::flow::Flow;
use maud::{Markup, html};

const BOX_W: u32 = 190;
const BOX_H: u32 = 58;
const GAP_X: u32 = 30;
const GAP_Y: u32 = 46;
const MARGIN: u32 = 10;

/// The graph of `flow`, each step coloured by its tasks in `tasks`.
pub fn svg(flow: &Flow, tasks: &[&TaskRecord]) -> Markup {
    let stages = flow.stages();
    let widest = stages
        .iter()
        .map(|s| s.steps.len() as u32)
        .max()
        .unwrap_or(1);
    let width = 2 * MARGIN + widest * BOX_W + (widest - 1) * GAP_X;
    let height = (2 * MARGIN + stages.len() as u32 * (BOX_H + GAP_Y)).saturating_sub(GAP_Y);
    // The left edge of box `i` of a row of `n`, the row centred.
    let x = |i: u32, n: u32| {
        let row = n * BOX_W + (n - 1) * GAP_X;
        (width - row) / 2 + i * (BOX_W + GAP_X)
    };
    let y = |row: u32| MARGIN + row * (BOX_H + GAP_Y);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img" aria-label={ "graph of flow " (flow.name()) } {
            @for (row, pair) in stages.windows(2).enumerate() {
                @let (a, b) = (&pair[0], &pair[1]);
                @for (i, _) in a.steps.iter().enumerate() {
                    @for (j, _) in b.steps.iter().enumerate() {
                        @let (x1, y1) = (x(i as u32, a.steps.len() as u32) + BOX_W / 2, y(row as u32) + BOX_H);
                        @let (x2, y2) = (x(j as u32, b.steps.len() as u32) + BOX_W / 2, y(row as u32 + 1));
                        line class="edge" x1=(x1) y1=(y1) x2=(x2) y2=(y2) {}
                        path class="edge" d={ "M" (x2 - 5) " " (y2 - 8) " L" (x2) " " (y2) " L" (x2 + 5) " " (y2 - 8) } {}
                    }
                }
                @if let Some(label) = b.kind.edge_label() {
                    text class="edge-label" x=(width / 2 + 8) y=(y(row as u32) + BOX_H + GAP_Y / 2 + 4) { (label) }
                }
            }
            @for (row, stage) in stages.iter().enumerate() {
                @for (i, d) in stage.steps.iter().enumerate() {
                    @let mine: Vec<&&TaskRecord> = tasks.iter().filter(|t| t.step == d.name).collect();
                    @let ok = mine.iter().filter(|t| t.status == Status::Succeeded).count();
                    @let failed = mine.iter().filter(|t| matches!(t.status, Status::Failed | Status::Killed)).count();
                    @let state = if mine.is_empty() { "not-run" } else if failed > 0 { "failed" }
                        else if ok == mine.len() { "succeeded" } else { "running" };
                    @let kubernetes = mine.iter().flat_map(|t| &t.attempts).any(|a| a.pod.is_some());
                    @let (bx, by) = (x(i as u32, stage.steps.len() as u32), y(row as u32));
                    g class={ "node " (state) } data-step=(d.name) {
                        rect x=(bx) y=(by) width=(BOX_W) height=(BOX_H) {}
                        text class="name" x=(bx + 10) y=(by + 18) { (d.name) }
                        text x=(bx + 10) y=(by + 34) {
                            @if mine.is_empty() { "not run" } @else {
                                (mine.len()) @if mine.len() == 1 { " task" } @else { " tasks" }
                                ": " (ok) " ok" @if failed > 0 { ", " (failed) " failed" }
                            }
                        }
                        text x=(bx + 10) y=(by + 50) {
                            @if mine.is_empty() { "" } @else if kubernetes { "on Kubernetes" } @else { "local" }
                        }
                    }
                }
            }
        }
    }
}
