//! Reconciliation of a location's stock over a period, lot by lot: what was
//! there at the start, every kind of movement in the period, what must be
//! there at the end, and what was drawn for doses but not yet accounted for
//! by an administration or a witnessed waste. Built from the ledger's sums,
//! so it is always the ledger's own account.

use std::collections::BTreeMap;

use serde::Serialize;

use super::EntryKind;

/// The ledger's entries of one lot and kind in the period, summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Movements {
    pub lot_id: String,
    pub kind: EntryKind,
    /// The entries belong to a draw (administered or wasted out of a syringe).
    pub from_draw: bool,
    /// Summed signed change to stock, µL.
    pub change_ul: i64,
    /// Summed magnitude, µL.
    pub quantity_ul: i64,
    pub entries: i64,
}

/// One lot over the period, in µL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LotReconciliation {
    pub lot_id: String,
    pub opening_ul: i64,
    /// Receipts and transfers in.
    pub received_ul: i64,
    pub drawn_ul: i64,
    pub administered_ul: i64,
    /// Wasted before a witness out of drawn syringes.
    pub wasted_from_draws_ul: i64,
    /// Wasted straight from stock.
    pub wasted_from_stock_ul: i64,
    pub transferred_out_ul: i64,
    pub breakage_ul: i64,
    pub returned_ul: i64,
    pub destroyed_ul: i64,
    /// Adjustments, signed.
    pub adjusted_ul: i64,
    pub closing_ul: i64,
    /// Drawn in the period and not yet given or wasted.
    pub unaccounted_draw_ul: i64,
    pub entries: i64,
}

impl LotReconciliation {
    /// Whether the movements add up: opening plus what came in less what
    /// went out is the closing balance.
    pub fn balances(&self) -> bool {
        self.opening_ul + self.received_ul + self.adjusted_ul
            - self.drawn_ul
            - self.wasted_from_stock_ul
            - self.transferred_out_ul
            - self.breakage_ul
            - self.returned_ul
            - self.destroyed_ul
            == self.closing_ul
    }
}

/// Every lot with stock at the start or a movement in the period.
pub fn reconcile(opening: &BTreeMap<String, i64>, moves: &[Movements]) -> Vec<LotReconciliation> {
    let mut out: BTreeMap<String, LotReconciliation> = opening
        .iter()
        .filter(|(_, ul)| **ul != 0)
        .map(|(lot, ul)| {
            (
                lot.clone(),
                LotReconciliation {
                    lot_id: lot.clone(),
                    opening_ul: *ul,
                    closing_ul: *ul,
                    ..Default::default()
                },
            )
        })
        .collect();
    for m in moves {
        let r = out
            .entry(m.lot_id.clone())
            .or_insert_with(|| LotReconciliation {
                lot_id: m.lot_id.clone(),
                ..Default::default()
            });
        r.closing_ul += m.change_ul;
        r.entries += m.entries;
        let q = m.quantity_ul;
        match m.kind {
            EntryKind::Receipt | EntryKind::TransferIn => r.received_ul += q,
            EntryKind::Draw => r.drawn_ul += q,
            EntryKind::Administered => r.administered_ul += q,
            EntryKind::Waste if m.from_draw => r.wasted_from_draws_ul += q,
            EntryKind::Waste => r.wasted_from_stock_ul += q,
            EntryKind::TransferOut => r.transferred_out_ul += q,
            EntryKind::Breakage => r.breakage_ul += q,
            EntryKind::Return => r.returned_ul += q,
            EntryKind::Destruction => r.destroyed_ul += q,
            EntryKind::Adjustment => r.adjusted_ul += m.change_ul,
        }
    }
    out.into_values()
        .map(|mut r| {
            r.unaccounted_draw_ul =
                (r.drawn_ul - r.administered_ul - r.wasted_from_draws_ul).max(0);
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mv(lot: &str, kind: EntryKind, from_draw: bool, ul: i64) -> Movements {
        Movements {
            lot_id: lot.into(),
            kind,
            from_draw,
            change_ul: super::super::stock_change(kind, ul, from_draw),
            quantity_ul: ul.abs(),
            entries: 1,
        }
    }

    #[test]
    fn a_day_of_one_lot_adds_up() {
        let opening = BTreeMap::from([("A".to_string(), 20_000)]);
        let moves = vec![
            mv("A", EntryKind::Receipt, false, 100_000),
            mv("A", EntryKind::Draw, false, 4_000),
            mv("A", EntryKind::Administered, true, 3_500),
            mv("A", EntryKind::Waste, true, 500),
            mv("A", EntryKind::Draw, false, 3_000),
            mv("A", EntryKind::Administered, true, 2_000),
            mv("A", EntryKind::Breakage, false, 1_000),
            mv("A", EntryKind::Adjustment, false, -1_000),
        ];
        let r = reconcile(&opening, &moves);
        assert_eq!(r.len(), 1);
        let a = &r[0];
        assert_eq!(a.received_ul, 100_000);
        assert_eq!(a.drawn_ul, 7_000);
        assert_eq!(a.administered_ul, 5_500);
        assert_eq!(a.wasted_from_draws_ul, 500);
        assert_eq!(a.unaccounted_draw_ul, 1_000, "the second syringe is open");
        assert_eq!(a.adjusted_ul, -1_000);
        assert_eq!(a.closing_ul, 20_000 + 100_000 - 7_000 - 1_000 - 1_000);
        assert!(a.balances());
    }

    #[test]
    fn empty_lots_without_movements_are_left_out() {
        let opening = BTreeMap::from([("A".to_string(), 0), ("B".to_string(), 5_000)]);
        let r = reconcile(&opening, &[mv("C", EntryKind::Receipt, false, 1_000)]);
        let lots: Vec<&str> = r.iter().map(|l| l.lot_id.as_str()).collect();
        assert_eq!(lots, ["B", "C"]);
        assert_eq!(r[0].closing_ul, 5_000);
    }

    proptest! {
        /// Whatever the movements, each lot's columns add up to its closing
        /// balance, and that is the opening plus the ledger's changes.
        #[test]
        fn every_lot_balances(
            open in 0i64..1_000_000,
            ops in prop::collection::vec((0usize..10, any::<bool>(), 1i64..50_000), 0..60),
        ) {
            let kinds = EntryKind::ALL;
            let opening = BTreeMap::from([("L".to_string(), open)]);
            let moves: Vec<Movements> = ops
                .iter()
                .map(|(k, d, ul)| {
                    let kind = kinds[*k % kinds.len()];
                    let from_draw = *d && matches!(kind, EntryKind::Administered | EntryKind::Waste);
                    let ul = if kind == EntryKind::Adjustment && *d { -*ul } else { *ul };
                    mv("L", kind, from_draw, ul)
                })
                .collect();
            let sum: i64 = moves.iter().map(|m| m.change_ul).sum();
            for r in reconcile(&opening, &moves) {
                prop_assert!(r.balances(), "{r:?}");
                prop_assert_eq!(r.closing_ul, open + sum);
            }
        }
    }
}
