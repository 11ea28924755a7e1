//! Problems found in a user's files, each pinned to `path:line:col`.
//!
//! Every check in strata reports through [`Diagnostic`], so the command line, the
//! GitHub annotations and the tests all see the same text.

use std::fmt;

/// One problem in one file, with a hint saying what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Path relative to the repository root, e.g. `environments/etcd-prod.yaml`.
    pub path: String,
    /// 1-based line, when the problem has a position.
    pub line: Option<usize>,
    /// 1-based column, when the problem has a position on the line.
    pub column: Option<usize>,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

/// The largest environment or unit file strata reads: far past any real one (a whole
/// rendered config must fit EC2's 16 KiB of user data), and small enough that a pull
/// request cannot make a run parse gigabytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// The problem of a file over [`MAX_FILE_BYTES`], if `text` is one.
pub fn too_large(path: &str, text: &str, what: &str) -> Option<Diagnostic> {
    (text.len() > MAX_FILE_BYTES).then(|| {
        Diagnostic::file(
            path,
            format!(
                "the file is {:.1} MiB; {what} is at most 1 MiB",
                text.len() as f64 / f64::from(1u32 << 20)
            ),
        )
        .with_hint("split it, or remove what does not belong in it")
    })
}

/// How many lines with control characters a file reports one by one; past these, one
/// more problem says how many lines are left.
const CONTROL_LINES_SHOWN: usize = 10;

/// True for a character no text file of strata's should hold: the C0 controls but
/// tab, line feed and carriage return, DEL, the C1 controls but NEL, and the two
/// noncharacters U+FFFE and U+FFFF (YAML's "non-printable" set). Invisible in a
/// pull request's diff, so a reviewer could not see them.
pub fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}')
        || matches!(c, '\u{80}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}')
}

/// One problem per line of `text` holding a control character ([`is_control`]), at the
/// first one on the line; `why` is the hint's reason, after "remove it; ".
pub fn control_characters(path: &str, text: &str, why: &str) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut more = 0usize;
    for (ix, line) in text.split('\n').enumerate() {
        let Some((column, c)) = line.chars().enumerate().find(|(_, c)| is_control(*c)) else {
            continue;
        };
        if problems.len() == CONTROL_LINES_SHOWN {
            more += 1;
            continue;
        }
        let what = match c {
            '\0' => "a NUL byte".to_owned(),
            c => format!("the control character U+{:04X}", u32::from(c)),
        };
        problems.push(
            Diagnostic::at(
                path,
                ix + 1,
                Some(column + 1),
                format!("the file holds {what}"),
            )
            .with_hint(format!("remove it; {why}")),
        );
    }
    if more > 0 {
        problems.push(
            Diagnostic::file(
                path,
                format!(
                    "{more} more {} hold control characters",
                    if more == 1 { "line" } else { "lines" }
                ),
            )
            .with_hint("save the file as plain text"),
        );
    }
    problems
}

/// The problem of a file that starts with a UTF-8 byte-order mark.
pub fn byte_order_mark(path: &str) -> Diagnostic {
    Diagnostic::at(path, 1, Some(1), "the file starts with a byte-order mark")
        .with_hint("save it as UTF-8 without a byte-order mark (BOM)")
}

impl Diagnostic {
    /// A problem with the whole file (no position).
    pub fn file(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.into(),
            line: None,
            column: None,
            message: message.into(),
            hint: None,
        }
    }

    /// A problem at a position in the file.
    pub fn at(
        path: impl Into<String>,
        line: usize,
        column: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            path: path.into(),
            line: Some(line),
            column,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds the hint that tells the user what to do.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the path, e.g. with the commit the file was read from.
    pub fn in_commit(mut self, commit: &str) -> Self {
        self.path = format!("{commit}:{}", self.path);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every problem found in one pass, in file and position order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Sorts by path, then position, so output is stable whatever order checks ran in.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| {
            (&a.path, a.line, a.column, &a.message).cmp(&(&b.path, b.line, b.column, &b.message))
        });
        self.0.dedup();
        self
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<Diagnostic>> for Diagnostics {
    fn from(value: Vec<Diagnostic>) -> Self {
        Diagnostics(value).sorted()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// An error and each of its causes, `: `-separated, for messages that must say why. A
/// cause whose text the message already holds (an error that quotes its source) is not
/// said again.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("the feed is down\n  hint: point os.feed_url at a mirror")]
    struct Feed;

    #[derive(Debug, thiserror::Error)]
    enum Run {
        #[error("environment `web`: {source}")]
        Quoting { source: Feed },
        #[error("environment `web` has no image")]
        Plain {
            #[source]
            source: Feed,
        },
    }

    #[test]
    fn a_cause_the_message_quotes_is_not_said_again() {
        let quoting = error_chain(&Run::Quoting { source: Feed });
        assert_eq!(
            quoting,
            "environment `web`: the feed is down\n  hint: point os.feed_url at a mirror"
        );
        let plain = error_chain(&Run::Plain { source: Feed });
        assert_eq!(
            plain,
            "environment `web` has no image: the feed is down\n  hint: point os.feed_url at a mirror"
        );
    }
}
