//! How an action reads in the JSON plan (`strata plan --format json`): its fields, with
//! what it needs (consent) and how many running machines it rolls, and the schema of
//! that shape (`schema/plan.schema.json`).

use serde::Serialize;

use super::{Action, ActionKind, FieldChange, Kind, Origin};

/// The JSON plan's action as `strata plan --format json` writes it (the schema of
/// [`Action`]'s serialisation).
#[derive(schemars::JsonSchema)]
#[schemars(rename = "Action")]
#[allow(dead_code)] // Only its schema is used.
struct ActionJson {
    /// Create, update, replace or delete.
    action: ActionKind,
    /// Resource type.
    kind: Kind,
    /// Logical id (`subnet/private/0`).
    id: super::LogicalId,
    /// The AWS id of the existing resource, for update, replace and delete.
    aws_id: Option<String>,
    /// True when applying it needs consent (`--allow-destroy`, the PR label
    /// `strata:allow-destroy`): every delete and every replace but an instance's.
    consent: bool,
    /// Running machines it replaces by a rollout, one at a time and without consent
    /// (absent when none): 1 for a fixed-size cluster's instance, the group's machines
    /// for an instance refresh.
    rollout: Option<usize>,
    /// In a plan made from a diff: `change` (the diff asks for it) or `drift` (only
    /// drift does).
    origin: Option<Origin>,
    /// Field-level changes.
    changes: Vec<FieldChange>,
    /// For a replace, or a change no field of its own asks for: what forces it.
    forced_by: Option<String>,
    /// Diff-style lines of what the change does in detail (a node change's unit lines).
    detail: Option<Vec<String>>,
}

impl schemars::JsonSchema for Action {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Action".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        ActionJson::json_schema(generator)
    }
}

/// The JSON plan's action: its fields, with what it needs (consent) and how many
/// running machines it rolls.
impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Action", 11)?;
        s.serialize_field("action", &self.action)?;
        s.serialize_field("kind", &self.kind)?;
        s.serialize_field("id", &self.id)?;
        match &self.aws_id {
            Some(id) => s.serialize_field("aws_id", id)?,
            None => s.skip_field("aws_id")?,
        }
        s.serialize_field("consent", &self.needs_consent())?;
        match self.rollout() {
            0 => s.skip_field("rollout")?,
            n => s.serialize_field("rollout", &n)?,
        }
        match &self.origin {
            Some(origin) => s.serialize_field("origin", origin)?,
            None => s.skip_field("origin")?,
        }
        s.serialize_field("changes", &self.changes)?;
        match &self.forced_by {
            Some(why) => s.serialize_field("forced_by", why)?,
            None => s.skip_field("forced_by")?,
        }
        match self.detail.is_empty() {
            true => s.skip_field("detail")?,
            false => s.serialize_field("detail", &self.detail)?,
        }
        s.end()
    }
}
