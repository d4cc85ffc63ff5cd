//! `/audit`: the audit log, newest first, with the chain's verification at the top and links to
//! the same entries as CSV and JSON (`/api/v1/audit`) and to each model's report.

use maud::{Markup, html};

use super::page::{self, Nav, badge};
use super::{AuditQuery, Rendered, UiState};
use crate::audit::chain::{self, Verification};
use crate::audit::entry::Entry;
use crate::audit::query::{self, Filter};

/// Entries on one page.
pub const SHOWN: usize = 200;

pub fn page(state: &UiState, q: &AuditQuery) -> anyhow::Result<Rendered> {
    let filter = Filter {
        model: q.model.clone().filter(|s| !s.is_empty()),
        action: q.action.clone().filter(|s| !s.is_empty()),
        actor: q.actor.clone().filter(|s| !s.is_empty()),
        ..Filter::default()
    };
    let (verification, entries) = state
        .store
        .read(|c| Ok((chain::verify(c, None)?, query::newest(c, &filter, SHOWN)?)))?;
    let mut api = vec![];
    for (k, v) in [
        ("model", &filter.model),
        ("action", &filter.action),
        ("actor", &filter.actor),
    ] {
        if let Some(v) = v {
            api.push((k, v.as_str()));
        }
    }
    let csv = {
        let mut pairs = api.clone();
        pairs.push(("format", "csv"));
        format!("/api/v1/audit?{}", page::query(&pairs))
    };
    let json = format!("/api/v1/audit?{}", page::query(&api));
    let body = html! {
        section aria-labelledby="chain" data-live="chain" {
            h2 id="chain" { "Hash chain" }
            (chain_summary(&verification))
        }
        section aria-labelledby="entries" data-live="entries" {
            h2 id="entries" { "Entries" }
            form.filters method="get" action="/audit" {
                label { "Model " input name="model" value=[filter.model.as_deref()]; }
                label { "Action " input name="action" placeholder="alert, drift.started, ..." value=[filter.action.as_deref()]; }
                label { "Actor " input name="actor" value=[filter.actor.as_deref()]; }
                button type="submit" { "Filter" }
                " " a href=(csv) { "CSV" } " · " a href=(json) { "JSON" }
            }
            @if entries.is_empty() {
                p.empty { "No entries." }
            } @else {
                @if entries.len() == SHOWN {
                    p.muted { "The newest " (SHOWN) "; the API pages through all of them." }
                }
                (table(&entries))
            }
        }
    };
    Ok(Rendered::Page(page::frame("Audit log", Nav::Audit, body)))
}

fn chain_summary(v: &Verification) -> Markup {
    html! {
        p data-chain-ok=(v.ok) {
            @if v.ok {
                (badge("ok")) " Verified: " (v.entries) " entries"
                @if let Some(first) = v.first_seq { " from " (first) }
                ", head " code { (v.head.seq) ":" (v.head.hash) }
            } @else {
                (badge("tampered")) " The chain breaks at entry "
                strong { (v.first_bad_seq.map(|s| s.to_string()).unwrap_or_default()) } ": "
                (v.problem.as_deref().unwrap_or(""))
            }
        }
        p.muted { "Keep an exported head (" code { "millwatch audit head" } ") elsewhere: "
            code { "millwatch audit verify --head SEQ:HASH" } " then finds a deleted tail too." }
    }
}

fn table(entries: &[Entry]) -> Markup {
    html! {
        table.audit {
            thead { tr { th { "#" } th { "Time" } th { "Actor" } th { "Action" } th { "Model" } th { "Object" } th { "Change" } th { "Reason" } } }
            tbody {
                @for e in entries {
                    tr data-seq=(e.seq) data-action=(e.action) {
                        td { (e.seq) }
                        td { (page::time(e.time)) }
                        td { (e.actor) @if let Some(s) = &e.source { br; span.muted { (s) } } }
                        td { code { (e.action) } }
                        td {
                            @if let Some(m) = &e.model {
                                a href={ "/models/" (page::segment(m)) } { (m) }
                            }
                        }
                        td { code.wrap { (e.object) } }
                        td {
                            @if let Some(old) = &e.old_value { span.muted { (old) } " → " }
                            @if let Some(new) = &e.new_value { code.wrap { (new) } }
                        }
                        td { (e.reason.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}
