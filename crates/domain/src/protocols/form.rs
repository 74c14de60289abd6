//! A protocol file as a form: each setting a labelled field, grouped as the
//! file groups them, and the form's answers written back into the file
//! with its comments and layout kept (so the next version's changes read
//! as the settings changed, nothing else). The file stays the one source:
//! the form is a way of writing it, checked like any imported file.

use toml_edit::{DocumentMut, Item, Table, Value};

use crate::FieldError;

/// How a field is written and read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Number,
    YesNo,
    Text,
    /// Words separated by commas.
    List,
}

/// One setting of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// `dose.min`; a top-level setting has no dot.
    pub path: String,
    /// The group's title ("" for the top level).
    pub section: &'static str,
    pub label: String,
    pub kind: Kind,
    /// As the form shows it (a list joined by ", "; yes/no as "true"/"false").
    pub value: String,
}

/// Settings the form does not offer: they say which protocol and version
/// this is, not how it is given.
const FIXED: [&str; 3] = ["id", "version", "route"];

fn section_title(table: &str) -> &'static str {
    match table {
        "dose" => "Dose",
        "preparation" => "Preparation",
        "titration" => "Titration",
        "monitoring" => "Monitoring during the dose",
        "pre_dose" => "Before the dose: go ahead only when",
        "limits" => "Alert (pause) and stop limits",
        "discharge" => "Discharge",
        "" => "The protocol",
        _ => "Other settings",
    }
}

/// The words of a setting the form knows.
fn known(path: &str) -> Option<&'static str> {
    Some(match path {
        "name" => "Name",
        "description" => "Description",
        "administration_minutes" => "Minutes the dose is given over",
        "checklist" => "Checklist before a dose",
        "pre_session_instruments" => "Questionnaires answered before a dose",
        "courses" => "Courses offered",
        "min_hours_between_doses" => "Hours between doses, at least",
        "home_use" => "Taken at home",
        "dose.unit" => "Dose unit (mg_per_kg or mg)",
        "dose.min" => "Lowest dose",
        "dose.max" => "Highest dose",
        "dose.start" => "Starting dose",
        "dose.step" => "Step up or down by",
        "preparation.concentration_mg_per_ml" => "Concentration (mg/mL)",
        "preparation.round_mg" => "Round the dose to (mg)",
        "preparation.diluent_ml" => "Diluent (mL)",
        "preparation.unit_mg" => "One spray, troche or tablet (mg)",
        "preparation.second_check" => "A second clinician checks the dose",
        "titration.up_when" => "Step up when",
        "titration.down_when" => "Step down when",
        "titration.doses_between_changes" => "Doses between changes",
        "monitoring.interval_minutes" => "Vital signs every (minutes)",
        "monitoring.continuous_spo2" => "Continuous pulse oximetry",
        "pre_dose.sbp_below" => "Systolic below (mmHg)",
        "pre_dose.dbp_below" => "Diastolic below (mmHg)",
        "pre_dose.hr_min" => "Heart rate at least (bpm)",
        "pre_dose.hr_max" => "Heart rate at most (bpm)",
        "pre_dose.spo2_min" => "SpO2 at least (%)",
        "pre_dose.fasting_solids_hours" => "No food for (hours)",
        "limits.sbp_max" => "Pause: systolic above (mmHg)",
        "limits.dbp_max" => "Pause: diastolic above (mmHg)",
        "limits.hr_min" => "Pause: heart rate below (bpm)",
        "limits.hr_max" => "Pause: heart rate above (bpm)",
        "limits.spo2_min" => "Pause: SpO2 below (%)",
        "limits.rr_min" => "Pause: breaths a minute below",
        "limits.rr_max" => "Pause: breaths a minute above",
        "limits.moaas_pause_at" => "Pause at MOAA/S (or less)",
        "limits.moaas_stop_at" => "Stop at MOAA/S (or less)",
        "limits.sbp_stop_above" => "Stop: systolic above (mmHg)",
        "limits.dbp_stop_above" => "Stop: diastolic above (mmHg)",
        "limits.hr_stop_below" => "Stop: heart rate below (bpm)",
        "limits.hr_stop_above" => "Stop: heart rate above (bpm)",
        "limits.spo2_stop_below" => "Stop: SpO2 below (%)",
        "limits.rr_stop_below" => "Stop: breaths a minute below",
        "limits.rr_stop_above" => "Stop: breaths a minute above",
        "discharge.aldrete_min" => "Aldrete score at least",
        "discharge.recovery_minutes_min" => "Minutes of recovery, at least",
        "discharge.escort_required" => "An escort takes the patient home",
        _ => return None,
    })
}

/// A setting's words: its own, or its key made readable.
fn label_of(path: &str) -> String {
    if let Some(l) = known(path) {
        return l.to_string();
    }
    let key = path.rsplit('.').next().unwrap_or(path).replace('_', " ");
    let mut c = key.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn field_of(path: String, section: &'static str, v: &Value) -> Option<Field> {
    let (kind, value) = match v {
        Value::Integer(i) => (Kind::Integer, i.value().to_string()),
        Value::Float(f) => (Kind::Number, f.value().to_string()),
        Value::Boolean(b) => (Kind::YesNo, b.value().to_string()),
        Value::String(s) => (Kind::Text, s.value().clone()),
        Value::Array(a) => (
            Kind::List,
            a.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        _ => return None,
    };
    Some(Field {
        label: label_of(&path),
        path,
        section,
        kind,
        value,
    })
}

/// The settings of a protocol file, top level first, then each table in
/// the file's order. A file that is not TOML has none (the check names
/// what is wrong with it).
pub fn fields(source: &str) -> Vec<Field> {
    let Ok(doc) = source.parse::<DocumentMut>() else {
        return vec![];
    };
    let mut out = vec![];
    let mut tables = vec![];
    for (key, item) in doc.iter() {
        match item {
            Item::Value(v) if !FIXED.contains(&key) => {
                out.extend(field_of(key.to_string(), section_title(""), v));
            }
            Item::Table(t) => tables.push((key, t)),
            _ => {}
        }
    }
    for (name, t) in tables {
        for (key, item) in t.iter() {
            if let Item::Value(v) = item {
                out.extend(field_of(format!("{name}.{key}"), section_title(name), v));
            }
        }
    }
    out
}

fn slot<'a>(doc: &'a mut DocumentMut, path: &str) -> Option<&'a mut Value> {
    match path.split_once('.') {
        None => doc.get_mut(path)?.as_value_mut(),
        Some((table, key)) => doc
            .get_mut(table)?
            .as_table_mut()
            .and_then(|t: &mut Table| t.get_mut(key))?
            .as_value_mut(),
    }
}

fn parse_as(kind: Kind, path: &str, label: &str, raw: &str) -> Result<Value, FieldError> {
    let t = raw.trim();
    let bad = |m: &str| FieldError::new(format!("field.{path}"), format!("{label}: {m}"));
    Ok(match kind {
        Kind::Integer => Value::from(
            t.parse::<i64>()
                .map_err(|_| bad("must be a whole number"))?,
        ),
        Kind::Number => {
            let n = t.parse::<f64>().map_err(|_| bad("must be a number"))?;
            if !n.is_finite() {
                return Err(bad("must be a number"));
            }
            Value::from(n)
        }
        Kind::YesNo => Value::from(match t {
            "true" | "yes" | "on" => true,
            "false" | "no" | "" => false,
            _ => return Err(bad("must be yes or no")),
        }),
        Kind::Text => Value::from(t),
        Kind::List => {
            let mut a = toml_edit::Array::new();
            for w in t.split(',').map(str::trim).filter(|w| !w.is_empty()) {
                a.push(w);
            }
            Value::Array(a)
        }
    })
}

/// The file with the form's answers written in: `answer(path)` is what the
/// form sent for a field (`None`: left as it was; a yes/no box that is not
/// ticked sends nothing, so yes/no fields are read as "false" when absent).
/// Only settings that changed are rewritten, their comments kept. Every
/// answer that cannot be read is named by its field.
pub fn apply(
    source: &str,
    answer: impl Fn(&str) -> Option<String>,
) -> Result<String, Vec<FieldError>> {
    let mut doc = source.parse::<DocumentMut>().map_err(|e| {
        vec![FieldError::new(
            "text",
            format!("the file is not valid TOML: {}", e.message()),
        )]
    })?;
    let mut errors = vec![];
    for f in fields(source) {
        let raw = match (answer(&f.path), f.kind) {
            (Some(v), _) => v,
            (None, Kind::YesNo) => "false".into(),
            (None, _) => continue,
        };
        let new = match parse_as(f.kind, &f.path, &f.label, &raw) {
            Ok(v) => v,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let Some(old) = slot(&mut doc, &f.path) else {
            continue;
        };
        let same = match (&*old, &new) {
            (Value::Float(a), Value::Float(b)) => a.value() == b.value(),
            (Value::Array(a), Value::Array(b)) => {
                a.iter().map(|x| x.as_str()).collect::<Vec<_>>()
                    == b.iter().map(|x| x.as_str()).collect::<Vec<_>>()
            }
            (a, b) => a.to_string().trim() == b.to_string().trim(),
        };
        if !same {
            let decor = old.decor().clone();
            *old = new;
            *old.decor_mut() = decor;
        }
    }
    if errors.is_empty() {
        Ok(doc.to_string())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IV: &str = include_str!("../../protocols/iv-v2.toml");

    #[test]
    fn every_setting_is_a_labelled_field_but_the_fixed_ones() {
        let f = fields(IV);
        let paths: Vec<&str> = f.iter().map(|x| x.path.as_str()).collect();
        for fixed in FIXED {
            assert!(!paths.contains(&fixed), "{fixed}");
        }
        let min = f.iter().find(|x| x.path == "dose.min").unwrap();
        assert_eq!(
            (
                min.label.as_str(),
                min.kind,
                min.value.as_str(),
                min.section
            ),
            ("Lowest dose", Kind::Number, "0.1", "Dose")
        );
        let check = f.iter().find(|x| x.path == "checklist").unwrap();
        assert_eq!(check.kind, Kind::List);
        assert!(check.value.starts_with("identity, pregnancy"));
        // Every setting of every shipped file has words of its own.
        for (file, text) in crate::protocols::BUILTIN {
            for x in fields(text) {
                assert!(known(&x.path).is_some(), "{file}: {}", x.path);
            }
        }
        assert_eq!(label_of("dose.new_thing"), "New thing");
        assert!(fields("not = [toml").is_empty());
    }

    #[test]
    fn answers_are_written_back_with_the_comments_kept() {
        let out = apply(IV, |p| match p {
            "dose.start" => Some("0.4".into()),
            "limits.sbp_max" => Some("175".into()),
            "checklist" => Some("identity, consent".into()),
            // The untouched yes/no boxes come back ticked.
            "preparation.second_check"
            | "monitoring.continuous_spo2"
            | "discharge.escort_required" => Some("true".into()),
            _ => None,
        })
        .unwrap();
        assert!(out.contains("start = 0.4\n"), "{out}");
        assert!(out.contains("sbp_max = 175\n"), "{out}");
        assert!(
            out.contains(r#"checklist = ["identity", "consent"]"#),
            "{out}"
        );
        // Comments and the lines not changed are as they were.
        let changed: Vec<_> = IV
            .lines()
            .zip(out.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 3, "{changed:?}");
        assert_eq!(IV.lines().count(), out.lines().count());
        // An unticked box is "no".
        let off = apply(IV, |p| (p == "dose.min").then(|| "0.1".into())).unwrap();
        assert!(off.contains("second_check = false"), "{off}");
    }

    #[test]
    fn unreadable_answers_are_each_named() {
        let e = apply(IV, |p| match p {
            "dose.min" => Some("a little".into()),
            "administration_minutes" => Some("40.5".into()),
            "preparation.second_check" => Some("maybe".into()),
            _ => None,
        })
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "field.administration_minutes",
                "field.dose.min",
                "field.preparation.second_check"
            ]
        );
        assert!(
            e[1].message.starts_with("Lowest dose: must be a number"),
            "{e:?}"
        );
    }
}
