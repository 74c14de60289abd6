//! Opaque, sortable identifiers (UUIDv7). Never sequential, so they are safe in URLs.

use std::fmt;
use std::str::FromStr;

macro_rules! id_type {
    ($name:ident) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
            pub fn as_uuid(&self) -> uuid::Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = crate::FieldError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only the canonical hyphenated form: one spelling per id keeps audit
                // rows and URLs comparable as text.
                if s.len() != 36 {
                    return Err(crate::FieldError::new("id", "is not a valid identifier"));
                }
                uuid::Uuid::try_parse(s)
                    .map(Self)
                    .map_err(|_| crate::FieldError::new("id", "is not a valid identifier"))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse()
                    .map_err(|_| serde::de::Error::custom("is not a valid identifier"))
            }
        }
    };
}

id_type!(OrgId);
id_type!(ClinicId);
id_type!(UserId);
id_type!(PatientId);
id_type!(TokenId);
id_type!(EventId);
id_type!(ClosureId);
id_type!(ResourceId);
id_type!(AppointmentTypeId);
id_type!(AppointmentId);
id_type!(SeriesId);
id_type!(FeedId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_sort_by_creation() {
        let a = PatientId::new();
        let b = PatientId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<PatientId>().unwrap(), a);
    }

    #[test]
    fn odd_ids_are_refused() {
        for s in [
            "",
            "1",
            "../etc/passwd",
            "' OR 1=1 --",
            "0190b5f0c3f07d4c9b1e2a3f4c5d6e7f",
            "{0190b5f0-c3f0-7d4c-9b1e-2a3f4c5d6e7f}",
        ] {
            assert!(s.parse::<PatientId>().is_err(), "{s}");
        }
    }
}
id_type!(LeadId);
id_type!(ResponseId);
id_type!(TaskId);
id_type!(LinkId);
