//! The outcome report: a clinic's (or every clinic's of the caller) courses
//! that started in a period, counted by the shipped definitions, for each
//! instrument they define, overall and by route, with each patient's change
//! for the waterfall and the published figures beside. Aggregates only: no
//! name, no date of a patient leaves here. The read is audited.

use domain::audit::Action;
use domain::auth::Permission;
use domain::ids::ClinicId;
use domain::instruments::Point;
use domain::outcomes::{cohort, patient_outcome, Cohort, Definitions, Published, PUBLISHED};
use jiff::civil::Date;

use crate::actor::Caller;
use crate::error::Error;
use crate::Clinic;

/// One instrument's part of the report.
pub struct InstrumentReport {
    pub id: String,
    pub name: String,
    pub rule: domain::outcomes::InstrumentRule,
    pub cohort: Cohort,
    /// The same, course by course's route: (route label, cohort).
    pub by_route: Vec<(String, Cohort)>,
    /// The same by the protocol and version of the first dose.
    pub by_protocol: Vec<(String, Cohort)>,
    /// Each course's change from baseline to outcome, smallest (best)
    /// first: the waterfall.
    pub changes: Vec<i32>,
    pub published: Vec<&'static Published>,
}

pub struct Report {
    pub definitions_version: u32,
    pub window: domain::outcomes::Window,
    pub baseline_days: i64,
    pub from: Date,
    pub to: Date,
    /// The clinics counted, by name.
    pub clinics: Vec<String>,
    pub instruments: Vec<InstrumentReport>,
}

/// The report over courses whose first dose fell from `from` to `to`
/// (inclusive, clinic dates), at `clinic` or at every clinic where the
/// caller may read scores.
pub async fn report(
    state: &Clinic,
    c: &Caller,
    clinic: Option<ClinicId>,
    from: Date,
    to: Date,
) -> Result<Report, Error> {
    let mine = c.require_any(Permission::MeasureRead)?;
    let clinics: Vec<ClinicId> = match clinic {
        Some(k) => {
            c.require(Permission::MeasureRead, k)?;
            vec![k]
        }
        None => mine,
    };
    if to < from {
        return Err(Error::Invalid(vec![domain::FieldError::new(
            "to",
            "is before the start of the period",
        )]));
    }
    let defs = Definitions::shipped().map_err(Error::Internal)?;
    let ids: Vec<&str> = defs.instruments.iter().map(|r| r.id.as_str()).collect();
    let mut names = vec![];
    let mut courses = vec![];
    for k in &clinics {
        let rec = state.store.clinic(*k).await?;
        let tz = crate::scheduling::clinic_tz(state, *k).await?;
        let start = crate::scheduling::micros_of(&tz, from);
        let end = crate::scheduling::micros_of(&tz, to.tomorrow().unwrap_or(to));
        courses.extend(state.store.outcome_courses(&[*k], start, end, &ids).await?);
        names.push(rec.settings.name);
    }
    let mut instruments = vec![];
    for rule in &defs.instruments {
        let name = state
            .instruments
            .current(&rule.id)
            .map(|i| i.name.clone())
            .unwrap_or_else(|| rule.id.clone());
        // One outcome per course, in the courses' order.
        let all: Vec<domain::outcomes::PatientOutcome> = courses
            .iter()
            .map(|k| {
                let points: Vec<Point> = k
                    .scores
                    .iter()
                    .filter(|s| s.0 == rule.id)
                    .map(|s| Point {
                        at: s.2,
                        total: s.1,
                    })
                    .collect();
                patient_outcome(&points, k.first_dose, rule, &defs)
            })
            .collect();
        let by_route = split(
            courses
                .iter()
                .map(|k| route_label(&k.route))
                .zip(all.iter().copied()),
        );
        let by_protocol = split(
            courses
                .iter()
                .map(|k| {
                    let name = state
                        .protocols()
                        .get(&k.protocol_id, k.protocol_version as u32)
                        .map(|p| p.name.clone())
                        .unwrap_or_else(|| k.protocol_id.clone());
                    format!("{name}, version {}", k.protocol_version)
                })
                .zip(all.iter().copied()),
        );
        let mut changes: Vec<i32> = all.iter().filter_map(|o| o.change()).collect();
        changes.sort_unstable();
        instruments.push(InstrumentReport {
            id: rule.id.clone(),
            name,
            rule: rule.clone(),
            cohort: cohort(&all),
            by_route,
            by_protocol,
            changes,
            published: PUBLISHED
                .iter()
                .filter(|p| p.instrument == rule.id)
                .collect(),
        });
    }
    let mut ev = c.event(Action::ResponseRead);
    ev.detail = Some(format!(
        "outcome report {from} to {to}: {} courses",
        courses.len()
    ));
    ev.clinic_id = clinic.map(|k| k.to_string());
    state.store.audit(vec![ev]).await?;
    Ok(Report {
        definitions_version: defs.version,
        window: defs.window.clone(),
        baseline_days: defs.baseline.max_days_before_first_dose,
        from,
        to,
        clinics: names,
        instruments,
    })
}

/// Cohorts by a label of each course, in the labels' order.
fn split(
    labelled: impl Iterator<Item = (String, domain::outcomes::PatientOutcome)>,
) -> Vec<(String, Cohort)> {
    let mut groups: std::collections::BTreeMap<String, Vec<domain::outcomes::PatientOutcome>> =
        Default::default();
    for (label, o) in labelled {
        groups.entry(label).or_default().push(o);
    }
    groups
        .into_iter()
        .map(|(label, of)| (label, cohort(&of)))
        .collect()
}

fn route_label(code: &str) -> String {
    serde_json::from_value::<domain::protocols::Route>(serde_json::Value::String(code.into()))
        .map(|r| r.label().to_string())
        .unwrap_or_else(|_| code.to_string())
}
