//! The patient registry: who the patient is and how to reach them and their
//! people. Validation turns raw input (a form or a JSON body) into details that
//! are known to be well formed.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::error::Errors;
use crate::{DomainError, FieldError};

/// Raw patient input, as a form or JSON body gives it: every field optional
/// text, so that every problem can be named at once.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatientInput {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub preferred_name: Option<String>,
    pub date_of_birth: Option<String>,
    pub sex_at_birth: Option<String>,
    pub pronouns: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub emergency_contact_name: Option<String>,
    pub emergency_contact_phone: Option<String>,
    pub emergency_contact_relation: Option<String>,
    pub escort_name: Option<String>,
    pub escort_phone: Option<String>,
}

/// Validated patient details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatientDetails {
    pub given_name: String,
    pub family_name: String,
    pub preferred_name: Option<String>,
    pub date_of_birth: Date,
    pub sex_at_birth: Option<String>,
    pub pronouns: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address_line1: Option<String>,
    pub address_line2: Option<String>,
    pub city: Option<String>,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub emergency_contact_name: Option<String>,
    pub emergency_contact_phone: Option<String>,
    pub emergency_contact_relation: Option<String>,
    pub escort_name: Option<String>,
    pub escort_phone: Option<String>,
}

pub const SEX_AT_BIRTH: [&str; 4] = ["female", "male", "intersex", "unknown"];

impl PatientDetails {
    /// Checks every field against `today` (the clinic's local date).
    pub fn validate(input: &PatientInput, today: Date) -> Result<Self, DomainError> {
        let mut e = Errors::new();
        let given_name = e
            .check(person_name(&input.given_name, "given_name", true))
            .flatten();
        let family_name = e
            .check(person_name(&input.family_name, "family_name", true))
            .flatten();
        let preferred_name = e.check(person_name(&input.preferred_name, "preferred_name", false));
        let date_of_birth = match input.date_of_birth.as_deref().map(str::trim) {
            None | Some("") => {
                e.add("date_of_birth", "is required");
                None
            }
            Some(s) => e.check(parse_birth_date(s, today)),
        };
        let sex_at_birth = e.check(optional(&input.sex_at_birth, "sex_at_birth", 20).and_then(
            |v| match v {
                Some(s) if !SEX_AT_BIRTH.contains(&s.as_str()) => Err(FieldError::new(
                    "sex_at_birth",
                    format!("must be one of {}", SEX_AT_BIRTH.join(", ")),
                )),
                v => Ok(v),
            },
        ));
        let pronouns = e.check(optional(&input.pronouns, "pronouns", 40));
        let phone_v = e.check(phone(&input.phone, "phone"));
        let email_v = e.check(email(&input.email, "email"));
        let address_line1 = e.check(optional(&input.address_line1, "address_line1", 200));
        let address_line2 = e.check(optional(&input.address_line2, "address_line2", 200));
        let city = e.check(optional(&input.city, "city", 100));
        let region = e.check(optional(&input.region, "region", 100));
        let postal_code = e.check(optional(&input.postal_code, "postal_code", 20));
        let emergency_contact_name = e.check(person_name(
            &input.emergency_contact_name,
            "emergency_contact_name",
            false,
        ));
        let emergency_contact_phone = e.check(phone(
            &input.emergency_contact_phone,
            "emergency_contact_phone",
        ));
        let emergency_contact_relation = e.check(optional(
            &input.emergency_contact_relation,
            "emergency_contact_relation",
            60,
        ));
        let escort_name = e.check(person_name(&input.escort_name, "escort_name", false));
        let escort_phone = e.check(phone(&input.escort_phone, "escort_phone"));
        e.into_result()?;
        // Every `check` above succeeded, so each value is present.
        let (Some(given_name), Some(family_name), Some(date_of_birth)) =
            (given_name, family_name, date_of_birth)
        else {
            return Err(DomainError::field("given_name", "is required"));
        };
        Ok(PatientDetails {
            given_name,
            family_name,
            preferred_name: preferred_name.flatten(),
            date_of_birth,
            sex_at_birth: sex_at_birth.flatten(),
            pronouns: pronouns.flatten(),
            phone: phone_v.flatten(),
            email: email_v.flatten(),
            address_line1: address_line1.flatten(),
            address_line2: address_line2.flatten(),
            city: city.flatten(),
            region: region.flatten(),
            postal_code: postal_code.flatten(),
            emergency_contact_name: emergency_contact_name.flatten(),
            emergency_contact_phone: emergency_contact_phone.flatten(),
            emergency_contact_relation: emergency_contact_relation.flatten(),
            escort_name: escort_name.flatten(),
            escort_phone: escort_phone.flatten(),
        })
    }

    /// The same details as raw input, for edit forms and patches.
    pub fn to_input(&self) -> PatientInput {
        PatientInput {
            given_name: Some(self.given_name.clone()),
            family_name: Some(self.family_name.clone()),
            preferred_name: self.preferred_name.clone(),
            date_of_birth: Some(self.date_of_birth.to_string()),
            sex_at_birth: self.sex_at_birth.clone(),
            pronouns: self.pronouns.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
            address_line1: self.address_line1.clone(),
            address_line2: self.address_line2.clone(),
            city: self.city.clone(),
            region: self.region.clone(),
            postal_code: self.postal_code.clone(),
            emergency_contact_name: self.emergency_contact_name.clone(),
            emergency_contact_phone: self.emergency_contact_phone.clone(),
            emergency_contact_relation: self.emergency_contact_relation.clone(),
            escort_name: self.escort_name.clone(),
            escort_phone: self.escort_phone.clone(),
        }
    }

    /// Lower-case text that patient search matches against: names, date of
    /// birth, phone digits and e-mail.
    pub fn search_text(&self, mrn: &str) -> String {
        let digits = |p: &Option<String>| {
            p.as_deref()
                .map(|s| s.chars().filter(char::is_ascii_digit).collect::<String>())
                .unwrap_or_default()
        };
        format!(
            "{} {} {} {} {} {} {}",
            self.given_name,
            self.family_name,
            self.preferred_name.as_deref().unwrap_or(""),
            self.date_of_birth,
            digits(&self.phone),
            self.email.as_deref().unwrap_or(""),
            mrn
        )
        .to_lowercase()
    }

    pub fn display_name(&self) -> String {
        format!("{}, {}", self.family_name, self.given_name)
    }

    pub fn age_on(&self, today: Date) -> i64 {
        let mut years = i64::from(today.year() - self.date_of_birth.year());
        if (today.month(), today.day()) < (self.date_of_birth.month(), self.date_of_birth.day()) {
            years -= 1;
        }
        years
    }
}

/// Applies a partial change (a PATCH body) on top of current details.
/// `Some(None)` clears an optional field; `None` leaves it.
pub fn merge(current: &PatientInput, patch: &PatientInput, cleared: &[String]) -> PatientInput {
    let pick = |cur: &Option<String>, new: &Option<String>, name: &str| {
        if cleared.iter().any(|c| c == name) {
            None
        } else {
            new.clone().or_else(|| cur.clone())
        }
    };
    PatientInput {
        given_name: pick(&current.given_name, &patch.given_name, "given_name"),
        family_name: pick(&current.family_name, &patch.family_name, "family_name"),
        preferred_name: pick(
            &current.preferred_name,
            &patch.preferred_name,
            "preferred_name",
        ),
        date_of_birth: pick(
            &current.date_of_birth,
            &patch.date_of_birth,
            "date_of_birth",
        ),
        sex_at_birth: pick(&current.sex_at_birth, &patch.sex_at_birth, "sex_at_birth"),
        pronouns: pick(&current.pronouns, &patch.pronouns, "pronouns"),
        phone: pick(&current.phone, &patch.phone, "phone"),
        email: pick(&current.email, &patch.email, "email"),
        address_line1: pick(
            &current.address_line1,
            &patch.address_line1,
            "address_line1",
        ),
        address_line2: pick(
            &current.address_line2,
            &patch.address_line2,
            "address_line2",
        ),
        city: pick(&current.city, &patch.city, "city"),
        region: pick(&current.region, &patch.region, "region"),
        postal_code: pick(&current.postal_code, &patch.postal_code, "postal_code"),
        emergency_contact_name: pick(
            &current.emergency_contact_name,
            &patch.emergency_contact_name,
            "emergency_contact_name",
        ),
        emergency_contact_phone: pick(
            &current.emergency_contact_phone,
            &patch.emergency_contact_phone,
            "emergency_contact_phone",
        ),
        emergency_contact_relation: pick(
            &current.emergency_contact_relation,
            &patch.emergency_contact_relation,
            "emergency_contact_relation",
        ),
        escort_name: pick(&current.escort_name, &patch.escort_name, "escort_name"),
        escort_phone: pick(&current.escort_phone, &patch.escort_phone, "escort_phone"),
    }
}

fn clean(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn has_control_chars(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

pub fn required(v: &Option<String>, field: &str, max: usize) -> Result<String, FieldError> {
    match optional(v, field, max)? {
        Some(s) => Ok(s),
        None => Err(FieldError::new(field, "is required")),
    }
}

pub fn optional(v: &Option<String>, field: &str, max: usize) -> Result<Option<String>, FieldError> {
    match clean(v) {
        None => Ok(None),
        Some(s) if s.chars().count() > max => Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(s) if has_control_chars(s) => Err(FieldError::new(
            field,
            "must not contain control characters",
        )),
        // Text that turns the text around it backwards (the overrides and
        // isolates of the bidirectional algorithm) shows one thing and
        // stores another; text of nothing but invisible characters is empty.
        Some(s) if s.chars().any(is_direction_control) => Err(FieldError::new(
            field,
            "must not contain direction-changing characters",
        )),
        Some(s) if s.chars().all(|c| c.is_whitespace() || is_invisible(c)) => Err(FieldError::new(
            field,
            "must not be made only of invisible characters",
        )),
        Some(s) => Ok(Some(s.to_string())),
    }
}

/// Phone numbers: a number that can be dialled (libphonenumber's rules; a
/// number without a country code is read as a US one), written with digits
/// and optional +, spaces, dots, dashes and brackets.
pub fn phone(v: &Option<String>, field: &str) -> Result<Option<String>, FieldError> {
    let Some(s) = optional(v, field, 30)? else {
        return Ok(None);
    };
    check_phone(&s).map_err(|m| FieldError::new(field, m))?;
    Ok(Some(s))
}

/// Whether `s` is a phone number that can be dialled; the words to say why not.
pub fn check_phone(s: &str) -> Result<(), String> {
    const WHY: &str =
        "must be a phone number with its area code, e.g. (602) 555-0142 or +44 20 7946 0958";
    let s = s.trim();
    let ok_chars = s.chars().enumerate().all(|(i, c)| {
        c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')') || (c == '+' && i == 0)
    });
    if s.is_empty() || !ok_chars {
        return Err(WHY.into());
    }
    match phonenumber::parse(Some(phonenumber::country::Id::US), s) {
        Ok(n) if phonenumber::is_valid(&n) => Ok(()),
        _ => Err(WHY.into()),
    }
}

/// Characters that change how text is shown without being seen: direction
/// overrides and isolates, zero-width spaces and joiners, the word joiner and
/// invisible operators, the byte-order mark, the soft hyphen.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}' | '\u{3164}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}')
}

/// The bidirectional overrides and isolates (U+202A-202E, U+2066-2069).
pub fn is_direction_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A person's name as people write it: at least one letter, no control or
/// invisible characters (a name of zero-width spaces, or one that reverses
/// the text around it, is refused), at most 100 characters.
pub fn check_person_name(s: &str) -> Result<(), String> {
    let s = s.trim();
    if s.chars().count() > 100 {
        return Err("must be at most 100 characters".into());
    }
    if s.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters".into());
    }
    if s.chars().any(is_invisible) {
        return Err("must not contain invisible or direction-changing characters".into());
    }
    if !s.chars().any(char::is_alphabetic) {
        return Err("must be a name, with at least one letter".into());
    }
    Ok(())
}

/// A required or optional name field, checked as [`check_person_name`].
pub fn person_name(
    v: &Option<String>,
    field: &str,
    required_field: bool,
) -> Result<Option<String>, FieldError> {
    let Some(s) = clean(v) else {
        return if required_field {
            Err(FieldError::new(field, "is required"))
        } else {
            Ok(None)
        };
    };
    check_person_name(s).map_err(|m| FieldError::new(field, m))?;
    Ok(Some(s.to_string()))
}

pub fn email(v: &Option<String>, field: &str) -> Result<Option<String>, FieldError> {
    let Some(s) = optional(v, field, 254)? else {
        return Ok(None);
    };
    let mut parts = s.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(FieldError::new(
            field,
            "must be an e-mail address like name@example.com",
        ));
    };
    if local.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || s.chars().any(char::is_whitespace)
    {
        return Err(FieldError::new(
            field,
            "must be an e-mail address like name@example.com",
        ));
    }
    Ok(Some(s.to_lowercase()))
}

/// A date of birth: YYYY-MM-DD, a real calendar date, not in the future, not
/// before 1900.
pub fn parse_birth_date(s: &str, today: Date) -> Result<Date, FieldError> {
    let field = "date_of_birth";
    if s.len() != 10 {
        return Err(FieldError::new(field, "must be a date as YYYY-MM-DD"));
    }
    let d: Date = s
        .parse()
        .map_err(|_| FieldError::new(field, "must be a real date as YYYY-MM-DD"))?;
    if d > today {
        return Err(FieldError::new(field, "must not be in the future"));
    }
    if d.year() < 1900 {
        return Err(FieldError::new(field, "must be in 1900 or later"));
    }
    Ok(d)
}

/// A medical record number from 40 random bits: "SW-" and two groups of four
/// Crockford base32 characters (no I, L, O, U), easy to read aloud. 40 bits
/// keep collisions (which are retried) rare up to about a million patients.
pub fn mrn_from_bits(bits: u64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut out = String::from("SW-");
    for i in (0..8).rev() {
        out.push(ALPHABET[((bits >> (i * 5)) & 31) as usize] as char);
        if i == 4 {
            out.push('-');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn text_that_hides_itself_is_refused() {
        use super::*;
        for bad in ["\u{200B}\u{200B}", "\u{2060} \u{FEFF}", "\u{3164}"] {
            let e = required(&Some(bad.into()), "display_name", 100).unwrap_err();
            assert!(e.message.contains("invisible"), "{bad:?}: {}", e.message);
            assert!(person_name(&Some(bad.into()), "given_name", true).is_err());
        }
        // An override reverses what follows: refused in any text.
        let e = optional(&Some("Invoice \u{202E}fdp.exe".into()), "reason", 200).unwrap_err();
        assert!(e.message.contains("direction"), "{}", e.message);
        assert!(optional(&Some("\u{2066}note\u{2069}".into()), "note", 200).is_err());
        // Joiners inside real text are writing, not hiding.
        assert!(optional(&Some("Mehr\u{200C}dad".into()), "note", 200).is_ok());
        assert!(person_name(&Some("Zoë O'Neil-Ruiz".into()), "given_name", true).is_ok());
    }

    use super::*;
    use jiff::civil::date;

    fn input() -> PatientInput {
        PatientInput {
            given_name: Some("Maria".into()),
            family_name: Some("Lopez".into()),
            date_of_birth: Some("1988-04-02".into()),
            phone: Some("(602) 555-0101".into()),
            email: Some("Maria@Example.org".into()),
            ..Default::default()
        }
    }

    #[test]
    fn valid_patient() {
        let p = PatientDetails::validate(&input(), date(2026, 11, 23)).unwrap();
        assert_eq!(p.email.as_deref(), Some("maria@example.org"));
        assert_eq!(p.age_on(date(2026, 11, 23)), 38);
        assert!(p.search_text("SW-ABC123").contains("6025550101"));
    }

    #[test]
    fn every_problem_is_named() {
        let bad = PatientInput {
            given_name: Some("   ".into()),
            family_name: Some("x".repeat(101)),
            date_of_birth: Some("2023-02-30".into()),
            phone: Some("call me".into()),
            email: Some("no-at-sign".into()),
            sex_at_birth: Some("other".into()),
            ..Default::default()
        };
        let Err(DomainError::Invalid(errs)) = PatientDetails::validate(&bad, date(2026, 1, 1))
        else {
            panic!("expected invalid")
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "given_name",
                "family_name",
                "date_of_birth",
                "sex_at_birth",
                "phone",
                "email"
            ]
        );
    }

    #[test]
    fn birth_dates() {
        let today = date(2026, 11, 23);
        assert!(parse_birth_date("2026-11-24", today).is_err());
        assert!(parse_birth_date("1899-12-31", today).is_err());
        assert!(parse_birth_date("1990-1-1", today).is_err());
        assert!(parse_birth_date("2000-02-29", today).is_ok());
        assert!(parse_birth_date("2001-02-29", today).is_err());
    }

    #[test]
    fn merge_keeps_clears_and_replaces() {
        let cur = input();
        let patch = PatientInput {
            phone: Some("602 555 0199".into()),
            ..Default::default()
        };
        let m = merge(&cur, &patch, &["email".to_string()]);
        assert_eq!(m.phone.as_deref(), Some("602 555 0199"));
        assert_eq!(m.email, None);
        assert_eq!(m.given_name.as_deref(), Some("Maria"));
    }

    proptest::proptest! {
        #[test]
        fn validation_never_panics(s in ".{0,300}", d in ".{0,12}") {
            let i = PatientInput {
                given_name: Some(s.clone()), family_name: Some(s.clone()),
                date_of_birth: Some(d), phone: Some(s.clone()), email: Some(s), ..Default::default()
            };
            let _ = PatientDetails::validate(&i, date(2026, 11, 23));
        }

        #[test]
        fn mrns_are_well_formed(bits in 0u64..(1 << 40)) {
            let m = mrn_from_bits(bits);
            proptest::prop_assert_eq!(m.len(), 12);
            proptest::prop_assert!(m[3..].chars().all(|c| c == '-' || c.is_ascii_digit() || c.is_ascii_uppercase()));
        }
    }
}
