//! Informed consent: versioned documents per clinic and route, the patient's
//! signature on the exact text (a SHA-256 of it is kept with the signature),
//! and whether a signature still holds: the document may have changed since,
//! a year may have passed, a witness may be missing, or the patient may have
//! withdrawn.
//!
//! A document is plain text with a title line and one section per topic:
//!
//! ```text
//! # Consent to ketamine treatment for anxiety
//! ## [off_label] Off-label use
//! Using ketamine for anxiety is ...
//! ```
//!
//! Every topic a patient must know about (DOMAIN.md and the seed clinics'
//! pages) must have its section, or the document cannot be published.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::protocols::Route;
use crate::FieldError;

/// How long a signature holds before the patient consents again.
pub const VALID_FOR_MICROS: i64 = 365 * 24 * 3600 * 1_000_000;

/// What a consent document must explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    What,
    OffLabel,
    NotApproved,
    Cost,
    Risks,
    Driving,
    RightToStop,
    Alternatives,
}

impl Topic {
    pub const ALL: [Topic; 8] = [
        Topic::What,
        Topic::OffLabel,
        Topic::NotApproved,
        Topic::Cost,
        Topic::Risks,
        Topic::Driving,
        Topic::RightToStop,
        Topic::Alternatives,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Topic::What => "what",
            Topic::OffLabel => "off_label",
            Topic::NotApproved => "not_approved",
            Topic::Cost => "cost",
            Topic::Risks => "risks",
            Topic::Driving => "driving",
            Topic::RightToStop => "right_to_stop",
            Topic::Alternatives => "alternatives",
        }
    }

    /// What the section must cover, for the message when it is missing.
    pub fn label(self) -> &'static str {
        match self {
            Topic::What => "what the treatment is and how it is given",
            Topic::OffLabel => "that the use is off-label",
            Topic::NotApproved => "that ketamine has no approval for anxiety",
            Topic::Cost => "that insurance rarely pays",
            Topic::Risks => {
                "the risks with their frequency (dissociation, blood pressure, nausea, cystitis, dependence)"
            }
            Topic::Driving => "no driving until the next day",
            Topic::RightToStop => "the right to stop and to withdraw",
            Topic::Alternatives => "the alternatives",
        }
    }

    fn parse(s: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.key() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    pub topic: Topic,
    pub heading: String,
    pub text: String,
}

/// A parsed, complete consent document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Document {
    pub title: String,
    pub sections: Vec<Section>,
}

const MAX_CHARS: usize = 40_000;

impl Document {
    /// Parses and checks a document's source text; every problem is named.
    pub fn parse(source: &str) -> Result<Document, Vec<FieldError>> {
        let mut errors = vec![];
        let err = |m: String| FieldError::new("body", m);
        if source.chars().count() > MAX_CHARS {
            return Err(vec![err(format!("is longer than {MAX_CHARS} characters"))]);
        }
        let mut title: Option<String> = None;
        let mut sections: Vec<Section> = vec![];
        for (n, raw) in source.lines().enumerate() {
            let line = raw.trim_end();
            let n = n + 1;
            if let Some(rest) = line.strip_prefix("## ") {
                let rest = rest.trim();
                let parsed = rest
                    .strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .map(|(k, h)| (k.trim(), h.trim()));
                match parsed {
                    Some((key, heading)) => match Topic::parse(key) {
                        None => errors.push(err(format!(
                            "line {n}: unknown topic [{key}]; the topics are {}",
                            Topic::ALL.map(|t| t.key()).join(", ")
                        ))),
                        Some(t) if sections.iter().any(|s| s.topic == t) => {
                            errors.push(err(format!("line {n}: topic [{key}] appears twice")))
                        }
                        Some(_) if heading.is_empty() => {
                            errors.push(err(format!("line {n}: the section needs a heading")))
                        }
                        Some(topic) => sections.push(Section {
                            topic,
                            heading: heading.to_string(),
                            text: String::new(),
                        }),
                    },
                    None => errors.push(err(format!(
                        "line {n}: a section starts with \"## [topic] Heading\""
                    ))),
                }
            } else if let Some(t) = line.strip_prefix("# ") {
                if title.is_some() || !sections.is_empty() {
                    errors.push(err(format!(
                        "line {n}: the title (\"# ...\") comes once, first"
                    )));
                } else {
                    title = Some(t.trim().to_string());
                }
            } else if let Some(s) = sections.last_mut() {
                let l = line.trim();
                if !(l.is_empty() && s.text.is_empty()) {
                    if !s.text.is_empty() {
                        s.text.push('\n');
                    }
                    s.text.push_str(l);
                }
            } else if !line.trim().is_empty() {
                errors.push(err(format!(
                    "line {n}: text before the first section; start it with \"## [topic] Heading\""
                )));
            }
        }
        for s in &mut sections {
            s.text = s.text.trim_end().to_string();
            if s.text.is_empty() {
                errors.push(err(format!("section [{}] has no text", s.topic.key())));
            }
        }
        match &title {
            None => errors.push(err("needs a title line starting with \"# \"".into())),
            Some(t) if t.is_empty() => errors.push(err("the title is empty".into())),
            _ => {}
        }
        for t in Topic::ALL {
            if !sections.iter().any(|s| s.topic == t) {
                errors.push(err(format!(
                    "is missing the section [{}] on {}",
                    t.key(),
                    t.label()
                )));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Document {
            title: title.unwrap_or_default(),
            sections,
        })
    }

    /// The exact text a patient reads and signs (and the PDF prints): the
    /// title, then each heading and its text, separated by blank lines.
    pub fn text(&self) -> String {
        let mut out = self.title.clone();
        for s in &self.sections {
            out.push_str("\n\n");
            out.push_str(&s.heading);
            out.push_str("\n\n");
            out.push_str(&s.text);
        }
        out
    }

    /// SHA-256 of `text()`, in hex: what a signature binds to.
    pub fn hash(&self) -> String {
        hash_text(&self.text())
    }
}

pub fn hash_text(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// How the route is named and described in the shipped template.
fn route_words(route: Route) -> (&'static str, &'static str) {
    match route {
        Route::Iv => (
            "IV infusion",
            "as a slow infusion into a vein over about 40 minutes",
        ),
        Route::Im => ("IM injection", "as an injection into a muscle"),
        Route::Sc => ("SC injection", "as an injection under the skin"),
        Route::Intranasal => ("intranasal", "as a nasal spray, under supervision"),
        Route::Sublingual => (
            "sublingual",
            "as a tablet or lozenge dissolved under the tongue, first in the clinic and later at home as prescribed",
        ),
        Route::Oral => ("oral", "by mouth, as prescribed"),
    }
}

/// Stillwater's template for a route, a starting point a clinic edits and
/// publishes as its own first version.
pub fn template(route: Route) -> String {
    let (name, how) = route_words(route);
    include_str!("../consents/ketamine.txt")
        .replace("{route}", name)
        .replace("{route_how}", how)
}

/// A signature as the consent state needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub document_version: i64,
    pub signed_at: i64,
    pub witness_required: bool,
    pub witnessed: bool,
    pub withdrawn_at: Option<i64>,
}

/// Whether a patient's consent for a route holds now, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConsentState {
    Valid {
        version: i64,
        expires_at: i64,
    },
    /// The clinic has published no consent document for the route.
    NoDocument,
    Missing,
    Outdated {
        signed_version: i64,
        current_version: i64,
    },
    Expired {
        signed_at: i64,
    },
    AwaitingWitness,
    Withdrawn {
        at: i64,
    },
}

impl ConsentState {
    pub fn is_valid(&self) -> bool {
        matches!(self, ConsentState::Valid { .. })
    }

    /// The reason in words, for banners and refusals.
    pub fn reason(&self) -> String {
        match self {
            ConsentState::Valid { version, .. } => format!("consent signed (version {version})"),
            ConsentState::NoDocument => "no consent document is published for this route".into(),
            ConsentState::Missing => "consent missing".into(),
            ConsentState::Outdated {
                signed_version,
                current_version,
            } => format!(
                "consent signed under version {signed_version}; version {current_version} must be signed"
            ),
            ConsentState::Expired { .. } => "consent is more than a year old; sign again".into(),
            ConsentState::AwaitingWitness => "consent awaits a witness".into(),
            ConsentState::Withdrawn { .. } => "consent withdrawn".into(),
        }
    }
}

/// The state of the latest signature against the current document version.
pub fn state(latest: Option<&Signed>, current_version: Option<i64>, now: i64) -> ConsentState {
    let Some(current) = current_version else {
        return ConsentState::NoDocument;
    };
    let Some(s) = latest else {
        return ConsentState::Missing;
    };
    if let Some(at) = s.withdrawn_at {
        return ConsentState::Withdrawn { at };
    }
    if s.document_version != current {
        return ConsentState::Outdated {
            signed_version: s.document_version,
            current_version: current,
        };
    }
    if now >= s.signed_at + VALID_FOR_MICROS {
        return ConsentState::Expired {
            signed_at: s.signed_at,
        };
    }
    if s.witness_required && !s.witnessed {
        return ConsentState::AwaitingWitness;
    }
    ConsentState::Valid {
        version: s.document_version,
        expires_at: s.signed_at + VALID_FOR_MICROS,
    }
}

/// What the patient gives when signing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInput {
    pub typed_name: String,
    pub agree: bool,
    /// The hash of the document the patient was shown; a document changed
    /// in between is refused rather than signed unseen.
    pub document_hash: String,
}

fn squash(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// Checks a signature against the patient's name and the current document.
pub fn check_signature(
    input: &SignInput,
    patient_name: &str,
    current_hash: &str,
) -> Result<(), Vec<FieldError>> {
    let mut errors = vec![];
    let typed = squash(&input.typed_name);
    if typed.is_empty() {
        errors.push(FieldError::new("typed_name", "type your full name to sign"));
    } else if typed != squash(patient_name) {
        errors.push(FieldError::new(
            "typed_name",
            "must be the patient's full name as registered (given and family name)",
        ));
    }
    if !input.agree {
        errors.push(FieldError::new(
            "agree",
            "tick the box to say you have read and agree",
        ));
    }
    if input.document_hash != current_hash {
        errors.push(FieldError::new(
            "document_hash",
            "the document changed since it was shown; read the current version and sign again",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The reason for withdrawing, checked (it may be brief, not empty).
pub fn check_withdrawal(reason: &str) -> Result<String, FieldError> {
    let r = reason.trim();
    if r.is_empty() {
        return Err(FieldError::new(
            "reason",
            "say briefly why (for example \"patient's wish\")",
        ));
    }
    if r.chars().count() > 500 {
        return Err(FieldError::new("reason", "must be at most 500 characters"));
    }
    Ok(r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_template_parses_with_every_topic() {
        for r in [
            Route::Iv,
            Route::Im,
            Route::Sc,
            Route::Intranasal,
            Route::Sublingual,
        ] {
            let d = Document::parse(&template(r)).expect("template parses");
            assert_eq!(d.sections.len(), Topic::ALL.len());
            assert!(d.title.contains(route_words(r).0));
            let t = d.text();
            for w in [
                "off-label",
                "not approved",
                "Insurance rarely pays",
                "dissociation",
                "cystitis",
                "nausea",
                "dependence",
                "drive",
                "stop treatment at any time",
                "Other treatments",
            ] {
                assert!(t.contains(w), "{r:?} template lacks {w:?}");
            }
        }
    }

    #[test]
    fn a_document_missing_a_topic_or_with_an_unknown_one_is_refused_by_name() {
        let src = template(Route::Iv);
        let without: String = src.split("## [cost]").next().unwrap().to_string()
            + &src[src.find("## [risks]").unwrap()..];
        let e = Document::parse(&without).unwrap_err();
        assert!(
            e.iter()
                .any(|e| e.message.contains("[cost]") && e.message.contains("insurance")),
            "{e:?}"
        );
        let e = Document::parse(&format!("{src}\n## [weather] Sunny\nIt is.")).unwrap_err();
        assert!(e[0].message.contains("unknown topic [weather]"), "{e:?}");
        let e = Document::parse(&format!("{src}\n## [cost] Again\nTwice.")).unwrap_err();
        assert!(e[0].message.contains("appears twice"), "{e:?}");
        let e = Document::parse("Hello\n").unwrap_err();
        assert!(e
            .iter()
            .any(|e| e.message.contains("before the first section")));
        assert!(e.iter().any(|e| e.message.contains("title")));
        let e = Document::parse(&src.replace(
            "## [driving] After each session\n",
            "## [driving] After each session\n\n## [alternatives_x] x\n",
        ))
        .unwrap_err();
        assert!(!e.is_empty());
    }

    #[test]
    fn the_hash_binds_the_exact_text() {
        let a = Document::parse(&template(Route::Iv)).unwrap();
        let b = Document::parse(&template(Route::Iv).replace("1 in 10", "1 in 11")).unwrap();
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), hash_text(&a.text()));
        // Trailing spaces and extra blank lines do not change what is read.
        let c = Document::parse(&template(Route::Iv).replace('\n', "  \n")).unwrap();
        assert_eq!(a.hash(), c.hash());
    }

    fn signed(version: i64, at: i64) -> Signed {
        Signed {
            document_version: version,
            signed_at: at,
            witness_required: false,
            witnessed: false,
            withdrawn_at: None,
        }
    }

    #[test]
    fn consent_holds_only_for_the_current_version_within_a_year_witnessed_and_not_withdrawn() {
        let now = 400 * 24 * 3600 * 1_000_000i64;
        assert_eq!(state(None, None, now), ConsentState::NoDocument);
        assert_eq!(state(None, Some(1), now), ConsentState::Missing);
        let s = signed(2, now - 1_000_000);
        assert!(state(Some(&s), Some(2), now).is_valid());
        assert_eq!(
            state(Some(&s), Some(3), now),
            ConsentState::Outdated {
                signed_version: 2,
                current_version: 3
            }
        );
        let old = signed(2, now - VALID_FOR_MICROS);
        assert!(matches!(
            state(Some(&old), Some(2), now),
            ConsentState::Expired { .. }
        ));
        let w = Signed {
            witness_required: true,
            ..s.clone()
        };
        assert_eq!(state(Some(&w), Some(2), now), ConsentState::AwaitingWitness);
        let w = Signed {
            witnessed: true,
            ..w
        };
        assert!(state(Some(&w), Some(2), now).is_valid());
        let gone = Signed {
            withdrawn_at: Some(now - 5),
            ..w
        };
        assert_eq!(
            state(Some(&gone), Some(2), now),
            ConsentState::Withdrawn { at: now - 5 }
        );
        assert!(state(Some(&gone), Some(2), now)
            .reason()
            .contains("withdrawn"));
    }

    #[test]
    fn a_signature_needs_the_patients_name_agreement_and_the_shown_document() {
        let ok = SignInput {
            typed_name: "  maria   LOPEZ ".into(),
            agree: true,
            document_hash: "abc".into(),
        };
        assert!(check_signature(&ok, "Maria Lopez", "abc").is_ok());
        let bad = SignInput {
            typed_name: "M. Lopez".into(),
            agree: false,
            document_hash: "old".into(),
        };
        let e = check_signature(&bad, "Maria Lopez", "abc").unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["typed_name", "agree", "document_hash"]);
        assert!(check_withdrawal("  ").is_err());
        assert_eq!(
            check_withdrawal(" patient's wish ").unwrap(),
            "patient's wish"
        );
    }
}
