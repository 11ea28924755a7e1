//! Each environment's blocks in the record, between hidden markers that name the
//! environment and its state, so a writer can keep the blocks other writers put there.

use super::{Entry, Record, State};
use crate::plan::comment::Header;

const BLOCK: &str = "<!-- strata:record ";
const PLAN: &str = "<!-- strata:record-plan ";
const CLOSE: &str = " -->";

/// `entry`'s block, between its markers.
pub(super) fn block(entry: &Entry) -> String {
    format!(
        "{BLOCK}{} {}{CLOSE}\n{}\n<!-- /strata:record {} -->\n",
        entry.name,
        state_word(entry.state),
        entry.text,
        entry.name
    )
}

/// `entry`'s folded plan, between its markers, when it has one.
pub(super) fn plan_block(entry: &Entry) -> Option<String> {
    let plan = entry.plan.as_ref()?;
    Some(format!(
        "{PLAN}{}{CLOSE}\n{plan}\n<!-- /strata:record-plan {} -->",
        entry.name, entry.name
    ))
}

fn state_word(state: State) -> String {
    match state {
        State::Applying => "applying".to_owned(),
        State::NoChanges => "unchanged".to_owned(),
        State::Applied(n) => format!("applied:{n}"),
        State::Stopped => "stopped".to_owned(),
        State::Failed => "failed".to_owned(),
    }
}

fn parse_state(word: &str) -> Option<State> {
    Some(match word {
        "applying" => State::Applying,
        "unchanged" => State::NoChanges,
        "stopped" => State::Stopped,
        "failed" => State::Failed,
        other => State::Applied(other.strip_prefix("applied:")?.parse().ok()?),
    })
}

/// The text between `open` (a marker naming `name`, up to its end) and the closing
/// marker of `name` (`close` then `name`), with where the search goes on.
fn between<'a>(
    body: &'a str,
    from: usize,
    open: &str,
    close: &str,
) -> Option<(&'a str, &'a str, usize)> {
    let start = from + body[from..].find(open)? + open.len();
    let head_end = start + body[start..].find(CLOSE)?;
    let head = &body[start..head_end];
    let name = head.split(' ').next()?;
    let text_start = head_end + CLOSE.len() + 1;
    let end_marker = format!("{close}{name}{CLOSE}");
    let text_end = text_start + body.get(text_start..)?.find(&end_marker)?;
    let text = body[text_start..text_end].strip_suffix('\n')?;
    Some((head, text, text_end + end_marker.len()))
}

/// The entries a comment body holds.
pub(super) fn entries(body: &str) -> Vec<Entry> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some((head, text, next)) = between(body, at, BLOCK, "<!-- /strata:record ") {
        at = next;
        let mut words = head.split(' ');
        let (Some(name), Some(state)) = (words.next(), words.next().and_then(parse_state)) else {
            continue;
        };
        found.push(Entry {
            name: name.to_owned(),
            state,
            text: text.to_owned(),
            plan: None,
        });
    }
    let mut at = 0;
    while let Some((head, text, next)) = between(body, at, PLAN, "<!-- /strata:record-plan ") {
        at = next;
        if let Some(entry) = found.iter_mut().find(|e| e.name == head) {
            entry.plan = Some(text.to_owned());
        }
    }
    found
}

/// `ours` with the entries of `existing` it does not hold, in name order, and the
/// header `existing` has when `ours` has none.
pub(super) fn merged(ours: &Record, existing: Option<&str>) -> Record {
    let mut record = ours.clone();
    if let Some(body) = existing {
        let others = entries(body)
            .into_iter()
            .filter(|e| !ours.entries.iter().any(|o| o.name == e.name));
        record.entries.extend(others);
        if record.header.is_none() {
            record.header = Header::parse(body);
        }
    }
    record.entries.sort_by(|a, b| a.name.cmp(&b.name));
    record
}

/// True when `body` holds each entry of `record` with its state and text.
pub(super) fn holds(record: &Record, body: &str) -> bool {
    let there = entries(body);
    record.entries.iter().all(|ours| {
        there
            .iter()
            .any(|e| e.name == ours.name && e.state == ours.state && e.text == ours.text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, state: State, text: &str) -> Entry {
        Entry {
            name: name.to_owned(),
            state,
            text: text.to_owned(),
            plan: Some(format!(
                "<details><summary>{name}</summary>\n\nplan\n</details>"
            )),
        }
    }

    fn record(entries: Vec<Entry>) -> Record {
        Record {
            header: None,
            commit: "4f1c2d3e5a6b".to_owned(),
            run: "[run 7](https://example.invalid/7)".to_owned(),
            notes: Vec::new(),
            entries,
        }
    }

    #[test]
    fn a_writer_keeps_the_blocks_of_the_others_and_replaces_its_own() {
        let first = record(vec![
            entry("a-env", State::Applying, "- ⏳ `a-env`: applying 2 changes"),
            entry(
                "b-env",
                State::Applied(3),
                "- ✅ `b-env`: applied 3 changes",
            ),
        ]);
        let body = first.document().comment();
        let second = record(vec![entry(
            "a-env",
            State::Failed,
            "- ❌ `a-env`: failed\n\n```\nboom -->\n```",
        )]);
        let merged = second.merged_into(Some(&body));
        let names: Vec<(&str, State)> = merged
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.state))
            .collect();
        assert_eq!(
            names,
            [("a-env", State::Failed), ("b-env", State::Applied(3))]
        );
        let written = merged.document().comment();
        assert!(second.is_in(&written));
        assert!(
            first.entries[1..]
                .iter()
                .all(|e| entries(&written).contains(e))
        );
        assert!(!first.is_in(&written), "a-env is no longer applying");
        assert!(written.contains("### ❌ Apply failed in 1 environment; 1 applied"));
    }

    #[test]
    fn a_body_without_blocks_holds_no_entry() {
        assert_eq!(entries("<!-- strata:comment -->\n### a plan"), Vec::new());
        assert_eq!(
            entries("<!-- strata:record x applied:1 -->\nno end"),
            Vec::new()
        );
    }
}
