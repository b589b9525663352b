//! Stable string names of fieldless enums: the one way an enum gets the name it has in the
//! API, the database and plugins ([`stable_names!`](crate::stable_names)), and the error
//! for a name that is none of them.

/// A string that is not the name of any variant of an enum with stable names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct UnknownName {
    /// What was being named, e.g. "invoice status".
    pub what: &'static str,
    /// The rejected name.
    pub name: String,
}
