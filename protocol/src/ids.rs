//! Identifiers, parsed once at the boundary so that the rest of the code can trust them.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must be a UUID such as 123e4567-e89b-12d3-a456-426614174000")]
    NotAUuid,
    #[error("node ids are 1-48 characters of a-z, 0-9 and '-'")]
    BadNodeId,
}

/// The client's name for a stateful session. Any textual UUID form is accepted and
/// normalised to lowercase hyphenated form, so `ABC…` and `abc…` are the same session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserUuid(Uuid);

impl UserUuid {
    /// A fresh random session name (tests and benchmarks use this).
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// A short, filesystem- and docker-name-safe form (32 hex characters).
    pub fn simple(&self) -> String {
        self.0.simple().to_string()
    }
}

impl TryFrom<&str> for UserUuid {
    type Error = IdError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Uuid::try_parse(value.trim())
            .map(Self)
            .map_err(|_| IdError::NotAUuid)
    }
}

impl TryFrom<String> for UserUuid {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::try_from(value.as_str())
    }
}

impl From<UserUuid> for String {
    fn from(value: UserUuid) -> Self {
        value.to_string()
    }
}

impl fmt::Display for UserUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A job's identity. UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(Uuid);

impl JobId {
    /// A new, time-ordered job id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl TryFrom<&str> for JobId {
    type Error = IdError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Uuid::try_parse(value)
            .map(Self)
            .map_err(|_| IdError::NotAUuid)
    }
}

impl TryFrom<String> for JobId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::try_from(value.as_str())
    }
}

impl From<JobId> for String {
    fn from(value: JobId) -> Self {
        value.to_string()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A worker-host node. Appears in queue names, container labels and mount paths, so it
/// is restricted to a safe alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    /// The node id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        let ok = !value.is_empty()
            && value.len() <= 48
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(value))
        } else {
            Err(IdError::BadNodeId)
        }
    }
}

impl TryFrom<&str> for NodeId {
    type Error = IdError;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::try_from(value.to_owned())
    }
}

impl From<NodeId> for String {
    fn from(value: NodeId) -> Self {
        value.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_uuid_normalises_case_and_form() {
        let a = UserUuid::try_from("123E4567-E89B-12D3-A456-426614174000").unwrap();
        let b = UserUuid::try_from("123e4567e89b12d3a456426614174000").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "123e4567-e89b-12d3-a456-426614174000");
    }

    #[test]
    fn user_uuid_rejects_garbage() {
        assert_eq!(UserUuid::try_from("user-1"), Err(IdError::NotAUuid));
        assert_eq!(UserUuid::try_from(""), Err(IdError::NotAUuid));
    }

    #[test]
    fn node_id_alphabet() {
        assert!(NodeId::try_from("node-1").is_ok());
        assert!(NodeId::try_from("Node_1").is_err());
        assert!(NodeId::try_from("").is_err());
        assert!(NodeId::try_from("../x").is_err());
    }
}
