//! Dose maths, done by code and never by hand: mg/kg times today's weight to
//! mg, rounded as the protocol says; mg to mL at the drawn strength; for an
//! infusion, the bag's total volume to a pump rate in mL/h over the
//! protocol's time; for sprays and troches, a whole number of them. A dose
//! outside the protocol's range is refused, and so is a weight no adult has.

use serde::{Deserialize, Serialize};

use crate::protocols::{is_multiple, DoseUnit, Protocol, Route};
use crate::FieldError;

/// Lightest and heaviest weight the maths accepts (kg).
pub const WEIGHT_KG: (f64, f64) = (30.0, 300.0);

/// mL are given to the hundredth, pump rates to the tenth of a mL/h.
pub const ML_STEP: f64 = 0.01;
pub const RATE_STEP: f64 = 0.1;

fn round_to(v: f64, step: f64) -> f64 {
    let r = (v / step).round() * step;
    // Trim the float noise of the multiplication (0.30000000000000004).
    (r * 1e6).round() / 1e6
}

/// What the prescriber orders and the nurse draws up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseMaths {
    pub route: Route,
    /// The dose as ordered, in the protocol's unit.
    pub dose: f64,
    pub unit: DoseUnit,
    /// Today's weight, for doses per kg.
    pub weight_kg: Option<f64>,
    /// The dose in mg after rounding.
    pub mg: f64,
    /// mg per kg actually given after rounding, for doses per kg.
    pub mg_per_kg: Option<f64>,
    pub concentration_mg_per_ml: f64,
    /// Drug drawn from the vial, mL.
    pub drug_ml: f64,
    /// Diluent the drug goes into, mL (0 when undiluted).
    pub diluent_ml: f64,
    /// Everything that goes in: drug plus diluent, mL.
    pub total_ml: f64,
    /// Minutes the dose is given over (0 for a bolus).
    pub minutes: u32,
    /// Pump rate for an infusion, mL/h.
    pub rate_ml_h: Option<f64>,
    /// Sprays or troches, for doses counted in them.
    pub units: Option<u32>,
    pub unit_mg: Option<f64>,
    /// A second person must check before the dose starts.
    pub second_check: bool,
}

impl DoseMaths {
    /// One line for the chair view and the note.
    pub fn summary(&self) -> String {
        let mut s = match (self.unit, self.weight_kg) {
            (DoseUnit::MgPerKg, Some(w)) => {
                format!("{} mg/kg x {} kg = {} mg", self.dose, w, self.mg)
            }
            _ => format!("{} mg", self.mg),
        };
        match (self.rate_ml_h, self.units) {
            (Some(rate), _) => s.push_str(&format!(
                "; {} mL drug + {} mL diluent = {} mL at {} mL/h over {} min",
                self.drug_ml, self.diluent_ml, self.total_ml, rate, self.minutes
            )),
            (None, Some(n)) => s.push_str(&format!(
                "; {n} x {} mg {}",
                self.unit_mg.unwrap_or_default(),
                if self.route == Route::Intranasal {
                    "sprays"
                } else {
                    "troches"
                }
            )),
            (None, None) => s.push_str(&format!(
                "; {} mL of {} mg/mL",
                self.drug_ml, self.concentration_mg_per_ml
            )),
        }
        s
    }
}

/// Works out a dose of `dose` (in the protocol's unit) for a patient
/// weighing `weight_kg` today. Every problem names its field.
pub fn order(
    p: &Protocol,
    dose: f64,
    weight_kg: Option<f64>,
) -> Result<DoseMaths, Vec<FieldError>> {
    let mut e = Vec::new();
    let d = &p.dose;
    if !dose.is_finite() || dose <= 0.0 {
        e.push(FieldError::new("dose", "must be a number above 0"));
    } else if dose < d.min || dose > d.max {
        e.push(FieldError::new(
            "dose",
            format!(
                "{dose} {} is outside the protocol's range {}-{} {} ({} v{})",
                d.unit.label(),
                d.min,
                d.max,
                d.unit.label(),
                p.id,
                p.version
            ),
        ));
    }
    let weight = match (d.unit, weight_kg) {
        (DoseUnit::MgPerKg, None) => {
            e.push(FieldError::new(
                "weight_kg",
                "the dose is per kg: weigh the patient today first",
            ));
            None
        }
        (_, Some(w)) if !w.is_finite() || w < WEIGHT_KG.0 || w > WEIGHT_KG.1 => {
            e.push(FieldError::new(
                "weight_kg",
                format!("{w} kg is outside {}-{} kg", WEIGHT_KG.0, WEIGHT_KG.1),
            ));
            None
        }
        (_, w) => w,
    };
    let prep = &p.preparation;
    let counted = matches!(p.route, Route::Intranasal | Route::Sublingual);
    if counted && dose.is_finite() && dose > 0.0 && !is_multiple(dose, prep.unit_mg) {
        e.push(FieldError::new(
            "dose",
            format!(
                "{dose} mg is not a whole number of {} mg units",
                prep.unit_mg
            ),
        ));
    }
    if !e.is_empty() {
        return Err(e);
    }
    let raw_mg = match d.unit {
        DoseUnit::MgPerKg => dose * weight.unwrap_or_default(),
        DoseUnit::Mg => dose,
    };
    let mg = round_to(raw_mg, prep.round_mg);
    if mg <= 0.0 {
        return Err(vec![FieldError::new(
            "dose",
            format!("rounds to 0 mg at {} mg steps", prep.round_mg),
        )]);
    }
    let drug_ml = round_to(mg / prep.concentration_mg_per_ml, ML_STEP);
    let (diluent_ml, minutes) = if p.route == Route::Iv {
        (prep.diluent_ml, p.administration_minutes)
    } else {
        (0.0, p.administration_minutes)
    };
    let total_ml = round_to(drug_ml + diluent_ml, ML_STEP);
    let rate_ml_h = (p.route == Route::Iv && minutes > 0)
        .then(|| round_to(total_ml * 60.0 / minutes as f64, RATE_STEP));
    let units = counted.then(|| (mg / prep.unit_mg).round() as u32);
    Ok(DoseMaths {
        route: p.route,
        dose,
        unit: d.unit,
        weight_kg: weight,
        mg,
        mg_per_kg: match (d.unit, weight) {
            (DoseUnit::MgPerKg, Some(w)) => Some(round_to(mg / w, 0.001)),
            _ => None,
        },
        concentration_mg_per_ml: prep.concentration_mg_per_ml,
        drug_ml,
        diluent_ml,
        total_ml,
        minutes,
        rate_ml_h,
        units,
        unit_mg: counted.then_some(prep.unit_mg),
        second_check: prep.second_check,
    })
}
