//! The invoice lifecycle: the host's one state machine.
//!
//! # Statuses
//!
//! - `pending`: open, not (fully) paid yet.
//! - `confirming`: enough has been paid, but not with enough confirmations.
//! - `paid`: enough has been paid and confirmed.
//! - `expired`: the deadline passed without a full payment.
//! - `cancelled`: cancelled by the merchant while unpaid; terminal.
//!
//! Amount outcomes are kept beside the status in an [`Outcome`]: `underpaid`,
//! `overpaid`, `paid_late`. Dialect plugins map status and outcome to their own
//! names; this module never names a dialect.
//!
//! # Transitions
//!
//! [`check_transition`] is the single place that decides whether a status
//! change is legal. Everything that changes an invoice's status goes through it
//! (directly or via [`next_status`]); an illegal transition is an
//! [`IllegalTransition`] error and is never applied. The legal ones:
//!
//! | from         | to           | why                                                         |
//! |--------------|--------------|-------------------------------------------------------------|
//! | `pending`    | `confirming` | enough paid, fewer confirmations than required              |
//! | `pending`    | `paid`       | enough paid and already confirmed (0 confirmations required, or a listener catching up) |
//! | `pending`    | `expired`    | deadline passed without a full payment                      |
//! | `pending`    | `cancelled`  | the merchant cancelled it                                   |
//! | `confirming` | `paid`       | the payment reached its confirmations                       |
//! | `confirming` | `pending`    | a reorg removed the payment, before the deadline            |
//! | `confirming` | `expired`    | a reorg removed the payment, after the deadline             |
//! | `paid`       | `confirming` | a reorg dropped confirmations                               |
//! | `paid`       | `pending`    | a reorg removed the payment, before the deadline            |
//! | `paid`       | `expired`    | a reorg removed the payment, after the deadline             |
//! | `expired`    | `confirming` | a late payment within the post-expiry monitoring window     |
//! | `expired`    | `paid`       | a late payment within the window, already confirmed         |
//!
//! Everything else is illegal: anything out of `cancelled`, `expired` back to
//! `pending`, cancelling anything but a `pending` invoice, and every
//! self-transition (an unchanged status is not a transition).
//!
//! # Evaluation
//!
//! [`evaluate`] derives the status an invoice must be in now, and its outcome,
//! from [`PaymentFacts`]. The rules, in order:
//!
//! 1. **Cancelled is terminal.** A cancelled invoice stays cancelled; payments
//!    that arrive afterwards are recorded by the caller but change nothing.
//! 2. **Enough** means `paid_total + tolerance >= amount_due` *and*
//!    `paid_total > 0`: the tolerance accepts a small underpayment as full, but
//!    nothing paid is never a payment, however large the tolerance.
//!    **Confirmed enough** is the same test on `confirmed_total`.
//! 3. **When the full payment was made decides whether it counts.** The time
//!    is `first_full_payment_at_ms`: the *block time* of the transfer with
//!    which the non-removed transfers first added up to enough (see
//!    [`super::tally`]), never the moment the host processed it. Facts that say
//!    enough without a time (a caller bug) are taken as paid now. With that
//!    time `seen`:
//!    - `seen < expires_at_ms`: on time. `paid` if confirmed enough, else
//!      `confirming`. A payment seen before the deadline is not late even if
//!      its confirmations complete after it.
//!    - `expires_at_ms <= seen < monitor_until_ms`: late, within the
//!      post-expiry monitoring window. `paid` or `confirming` as above, with
//!      `paid_late` set. This revives an `expired` invoice.
//!    - `seen >= monitor_until_ms` (and `>= expires_at_ms`): too late. The
//!      invoice is (or becomes) `expired` and is not revived; the caller
//!      records the payment.
//! 4. **Not enough:** `pending` while `now_ms < expires_at_ms`, `expired` from
//!    `expires_at_ms` on (the deadline instant itself is expired); an `expired`
//!    invoice stays `expired` even if the host's clock steps back. This is also
//!    where a reorg lands: a `confirming` or `paid` invoice whose payment was
//!    removed goes back to `pending`, or to `expired` after the deadline.
//!
//! The outcome flags:
//!
//! - `underpaid`: something was paid but not enough (rule 2), whatever the
//!   status: a partially paid `pending`, `expired` or `cancelled` invoice. A
//!   payment accepted as full thanks to the tolerance is *not* underpaid; the
//!   shortfall is `amount_due - paid_total`.
//! - `overpaid`: `paid_total > amount_due`, strictly, whatever the status.
//! - `paid_late`: the invoice is `confirming` or `paid` because of a payment
//!   seen late but within the monitoring window (rule 3).
//!
//! Evaluation is a pure function of the facts; it never looks at the clock or
//! the database. Every change it can ask for is legal (a test walks them all);
//! [`next_status`] still checks each one, so a future rule that could ask for
//! an illegal change is an error, never applied.

use std::fmt;

use super::Amount;

/// Where an invoice is in its lifecycle. Names: `pending`, `confirming`,
/// `paid`, `expired`, `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvoiceStatus {
    /// Open, not (fully) paid yet.
    Pending,
    /// Enough paid, fewer confirmations than required.
    Confirming,
    /// Enough paid and confirmed.
    Paid,
    /// The deadline passed without a full payment.
    Expired,
    /// Cancelled by the merchant while unpaid; terminal.
    Cancelled,
}

stable_names!(InvoiceStatus, "invoice status", {
    Pending => "pending",
    Confirming => "confirming",
    Paid => "paid",
    Expired => "expired",
    Cancelled => "cancelled",
});

/// Amount outcomes recorded beside the status. See the module docs for when
/// each flag is set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct Outcome {
    /// Something was paid, but not enough even with the tolerance.
    pub underpaid: bool,
    /// More than the amount due was paid.
    pub overpaid: bool,
    /// The full payment was seen after the deadline, within the post-expiry
    /// monitoring window.
    pub paid_late: bool,
}

/// A status change that the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal invoice transition from `{from}` to `{to}`")]
pub struct IllegalTransition {
    /// The current status.
    pub from: InvoiceStatus,
    /// The requested status.
    pub to: InvoiceStatus,
}

/// Checks that an invoice may move from `from` to `to`. The single place that
/// validates transitions; the table is in the module docs.
pub fn check_transition(from: InvoiceStatus, to: InvoiceStatus) -> Result<(), IllegalTransition> {
    use InvoiceStatus::*;
    match (from, to) {
        (Pending, Confirming | Paid | Expired | Cancelled)
        | (Confirming, Paid | Pending | Expired)
        | (Paid, Confirming | Pending | Expired)
        | (Expired, Confirming | Paid) => Ok(()),
        _ => Err(IllegalTransition { from, to }),
    }
}

/// What is known about an invoice's payments at one instant; the input of
/// [`evaluate`]. Times are Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentFacts {
    /// The invoice's current status.
    pub status: InvoiceStatus,
    /// The amount the invoice asks for, in base units.
    pub amount_due: Amount,
    /// Sum of the matched transfers that have not been removed by a reorg.
    pub paid_total: Amount,
    /// Sum of those transfers that have enough confirmations.
    pub confirmed_total: Amount,
    /// Underpayment accepted as full payment, in base units.
    pub tolerance: Amount,
    /// The current time.
    pub now_ms: i64,
    /// The payment deadline: from this instant on, the invoice is expired
    /// unless fully paid.
    pub expires_at_ms: i64,
    /// End of the post-expiry monitoring window: a full payment seen before
    /// this instant (and after the deadline) still pays the invoice, late.
    pub monitor_until_ms: i64,
    /// Block time of the transfer with which the non-removed transfers first
    /// added up to enough, if they do.
    pub first_full_payment_at_ms: Option<i64>,
}

/// Whether `total` pays `amount_due` in full: `total + tolerance >= amount_due` and
/// something was paid (rule 2 of the module docs). The one definition of "enough", used by
/// the lifecycle and by the tally that finds the completing payment.
pub fn covers_due(total: Amount, amount_due: Amount, tolerance: Amount) -> bool {
    !total.is_zero() && total.saturating_add(tolerance) >= amount_due
}

/// The status the facts call for, and the amount outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evaluation {
    /// The status the invoice must be in now.
    pub status: InvoiceStatus,
    /// The amount outcomes beside it.
    pub outcome: Outcome,
}

/// Derives the status an invoice must be in now, and its outcome, from the
/// payment facts. The rules are in the module docs.
pub fn evaluate(facts: &PaymentFacts) -> Evaluation {
    use InvoiceStatus::*;
    let enough = covers_due(facts.paid_total, facts.amount_due, facts.tolerance);
    let confirmed = covers_due(facts.confirmed_total, facts.amount_due, facts.tolerance);
    let mut outcome = Outcome {
        underpaid: !enough && !facts.paid_total.is_zero(),
        overpaid: facts.paid_total > facts.amount_due,
        paid_late: false,
    };
    let paid_or_confirming = if confirmed { Paid } else { Confirming };
    let status = if facts.status == Cancelled {
        Cancelled
    } else if enough {
        let seen_at = facts.first_full_payment_at_ms.unwrap_or(facts.now_ms);
        if seen_at < facts.expires_at_ms {
            paid_or_confirming
        } else if seen_at < facts.monitor_until_ms {
            outcome.paid_late = true;
            paid_or_confirming
        } else {
            Expired
        }
    } else if facts.status == Expired || facts.now_ms >= facts.expires_at_ms {
        // An expired invoice never reopens, even if the host's clock has stepped back.
        Expired
    } else {
        Pending
    };
    Evaluation { status, outcome }
}

/// Evaluates the facts and, if the status must change, validates the change
/// with [`check_transition`]: `Ok(Some((new_status, outcome)))` for a legal
/// change, `Ok(None)` when the status stays (the outcome may still have
/// changed: use [`evaluate`] for it), and an error when the facts ask for an
/// illegal change, which must not be applied.
pub fn next_status(
    facts: &PaymentFacts,
) -> Result<Option<(InvoiceStatus, Outcome)>, IllegalTransition> {
    let Evaluation { status, outcome } = evaluate(facts);
    if status == facts.status {
        return Ok(None);
    }
    check_transition(facts.status, status)?;
    Ok(Some((status, outcome)))
}

/// The kind of an outbox event about an invoice. Names are stable and dotted:
/// `invoice.created`, `invoice.paid`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The invoice was created.
    Created,
    /// A partial or full payment was seen; the status may be unchanged.
    PaymentDetected,
    /// The invoice moved to `confirming`.
    Confirming,
    /// The invoice moved to `paid`.
    Paid,
    /// The invoice moved to `expired`.
    Expired,
    /// The invoice was cancelled.
    Cancelled,
    /// A reorg moved the invoice back from `confirming` or `paid`.
    Reverted,
    /// The payer says it has paid (nothing seen on chain yet).
    Submitted,
    /// An unpaid fiat-priced invoice was re-quoted: a new amount due and quote.
    Requoted,
}

stable_names!(EventKind, "invoice event kind", {
    Created => "invoice.created",
    PaymentDetected => "invoice.payment_detected",
    Confirming => "invoice.confirming",
    Paid => "invoice.paid",
    Expired => "invoice.expired",
    Cancelled => "invoice.cancelled",
    Reverted => "invoice.reverted",
    Submitted => "invoice.submitted",
    Requoted => "invoice.requoted",
});

impl EventKind {
    /// The event a status change emits. Meant for changes that
    /// [`check_transition`] accepted: any move back out of `confirming` or
    /// `paid` other than to `paid` (to `pending`, to `expired`, or from
    /// `paid` to `confirming`) is [`EventKind::Reverted`]; every other change
    /// is named after its target status.
    pub fn for_transition(from: InvoiceStatus, to: InvoiceStatus) -> EventKind {
        use InvoiceStatus as S;
        match (from, to) {
            (_, S::Paid) => EventKind::Paid,
            (_, S::Cancelled) => EventKind::Cancelled,
            (S::Paid, _) | (S::Confirming, S::Pending | S::Expired) | (_, S::Pending) => {
                EventKind::Reverted
            }
            (_, S::Confirming) => EventKind::Confirming,
            (_, S::Expired) => EventKind::Expired,
        }
    }
}

impl fmt::Display for Outcome {
    /// The set flags, comma separated (`underpaid,paid_late`), or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = [
            (self.underpaid, "underpaid"),
            (self.overpaid, "overpaid"),
            (self.paid_late, "paid_late"),
        ];
        let mut set = flags.iter().filter(|(on, _)| *on).map(|(_, name)| *name);
        match set.next() {
            None => f.write_str("none"),
            Some(first) => {
                f.write_str(first)?;
                set.try_for_each(|name| write!(f, ",{name}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InvoiceStatus::*;
    use super::*;

    const ALLOWED: [(InvoiceStatus, InvoiceStatus); 12] = [
        (Pending, Confirming),
        (Pending, Paid),
        (Pending, Expired),
        (Pending, Cancelled),
        (Confirming, Paid),
        (Confirming, Pending),
        (Confirming, Expired),
        (Paid, Confirming),
        (Paid, Pending),
        (Paid, Expired),
        (Expired, Confirming),
        (Expired, Paid),
    ];

    #[test]
    fn every_allowed_transition_is_accepted() {
        for (from, to) in ALLOWED {
            assert_eq!(check_transition(from, to), Ok(()), "{from} -> {to}");
        }
    }

    #[test]
    fn every_other_transition_is_illegal() {
        let mut illegal = 0;
        for &from in InvoiceStatus::ALL {
            for &to in InvoiceStatus::ALL {
                if !ALLOWED.contains(&(from, to)) {
                    assert_eq!(
                        check_transition(from, to),
                        Err(IllegalTransition { from, to }),
                        "{from} -> {to}"
                    );
                    illegal += 1;
                }
            }
        }
        assert_eq!(illegal, 25 - ALLOWED.len());
    }

    #[test]
    fn notable_illegal_transitions_are_rejected() {
        let table = [
            // Cancelled is terminal.
            (Cancelled, Pending),
            (Cancelled, Confirming),
            (Cancelled, Paid),
            (Cancelled, Expired),
            // Expired never reopens.
            (Expired, Pending),
            // Only an unpaid, open invoice can be cancelled.
            (Confirming, Cancelled),
            (Paid, Cancelled),
            (Expired, Cancelled),
            // An unchanged status is not a transition.
            (Pending, Pending),
            (Confirming, Confirming),
            (Paid, Paid),
            (Expired, Expired),
            (Cancelled, Cancelled),
        ];
        for (from, to) in table {
            assert!(check_transition(from, to).is_err(), "{from} -> {to}");
        }
    }

    #[test]
    fn illegal_transition_message_names_both_statuses() {
        let err = check_transition(Cancelled, Paid).unwrap_err();
        assert_eq!(
            err.to_string(),
            "illegal invoice transition from `cancelled` to `paid`"
        );
    }

    #[test]
    fn status_names_are_lower_case_and_round_trip() {
        let names: Vec<_> = InvoiceStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            ["pending", "confirming", "paid", "expired", "cancelled"]
        );
        for &status in InvoiceStatus::ALL {
            assert_eq!(status.as_str().parse::<InvoiceStatus>(), Ok(status));
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(
                serde_json::from_str::<InvoiceStatus>(&json).unwrap(),
                status
            );
        }
        let err = "Paid".parse::<InvoiceStatus>().unwrap_err();
        assert_eq!(err.to_string(), "unknown invoice status `Paid`");
        assert!(serde_json::from_str::<InvoiceStatus>("\"canceled\"").is_err());
    }

    #[test]
    fn event_kind_names_are_stable_and_dotted() {
        let names: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "invoice.created",
                "invoice.payment_detected",
                "invoice.confirming",
                "invoice.paid",
                "invoice.expired",
                "invoice.cancelled",
                "invoice.reverted",
                "invoice.submitted",
                "invoice.requoted",
            ]
        );
        for &kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
        }
        assert!("invoice.unknown".parse::<EventKind>().is_err());
    }

    #[test]
    fn every_allowed_transition_emits_its_event() {
        let expected = [
            EventKind::Confirming, // pending -> confirming
            EventKind::Paid,       // pending -> paid
            EventKind::Expired,    // pending -> expired
            EventKind::Cancelled,  // pending -> cancelled
            EventKind::Paid,       // confirming -> paid
            EventKind::Reverted,   // confirming -> pending
            EventKind::Reverted,   // confirming -> expired
            EventKind::Reverted,   // paid -> confirming
            EventKind::Reverted,   // paid -> pending
            EventKind::Reverted,   // paid -> expired
            EventKind::Confirming, // expired -> confirming
            EventKind::Paid,       // expired -> paid
        ];
        for ((from, to), kind) in ALLOWED.into_iter().zip(expected) {
            assert_eq!(EventKind::for_transition(from, to), kind, "{from} -> {to}");
        }
    }

    #[test]
    fn outcome_serializes_as_named_flags() {
        let outcome = Outcome {
            underpaid: false,
            overpaid: true,
            paid_late: true,
        };
        assert_eq!(
            serde_json::to_value(outcome).unwrap(),
            serde_json::json!({"underpaid": false, "overpaid": true, "paid_late": true})
        );
        assert_eq!(outcome.to_string(), "overpaid,paid_late");
        assert_eq!(Outcome::default().to_string(), "none");
    }

    const EXPIRES: i64 = 10_000;
    const MONITOR_UNTIL: i64 = 20_000;

    /// A pending invoice for 100 base units, nothing paid, before its deadline.
    fn facts() -> PaymentFacts {
        PaymentFacts {
            status: Pending,
            amount_due: Amount::from(100),
            paid_total: Amount::ZERO,
            confirmed_total: Amount::ZERO,
            tolerance: Amount::ZERO,
            now_ms: 5_000,
            expires_at_ms: EXPIRES,
            monitor_until_ms: MONITOR_UNTIL,
            first_full_payment_at_ms: None,
        }
    }

    /// `facts()` with `amount` paid at `at` and `confirmed` of it confirmed.
    fn paid(amount: u64, confirmed: u64, at: i64) -> PaymentFacts {
        let full = Amount::from(amount) >= Amount::from(100);
        PaymentFacts {
            paid_total: Amount::from(amount),
            confirmed_total: Amount::from(confirmed),
            now_ms: at.max(5_000),
            first_full_payment_at_ms: full.then_some(at),
            ..facts()
        }
    }

    fn outcome(underpaid: bool, overpaid: bool, paid_late: bool) -> Outcome {
        Outcome {
            underpaid,
            overpaid,
            paid_late,
        }
    }

    fn eval(facts: PaymentFacts) -> (InvoiceStatus, Outcome) {
        let Evaluation { status, outcome } = evaluate(&facts);
        (status, outcome)
    }

    #[test]
    fn unpaid_invoice_stays_pending_before_the_deadline() {
        assert_eq!(eval(facts()), (Pending, Outcome::default()));
        assert_eq!(next_status(&facts()), Ok(None));
    }

    #[test]
    fn unpaid_invoice_expires_at_the_deadline() {
        let before = PaymentFacts {
            now_ms: EXPIRES - 1,
            ..facts()
        };
        let at = PaymentFacts {
            now_ms: EXPIRES,
            ..facts()
        };
        assert_eq!(eval(before).0, Pending);
        assert_eq!(eval(at), (Expired, Outcome::default()));
        assert_eq!(next_status(&at), Ok(Some((Expired, Outcome::default()))));
    }

    #[test]
    fn exact_payment_unconfirmed_is_confirming() {
        assert_eq!(eval(paid(100, 0, 6_000)), (Confirming, Outcome::default()));
    }

    #[test]
    fn exact_payment_confirmed_is_paid() {
        let f = PaymentFacts {
            status: Confirming,
            ..paid(100, 100, 6_000)
        };
        assert_eq!(eval(f), (Paid, Outcome::default()));
        assert_eq!(next_status(&f), Ok(Some((Paid, Outcome::default()))));
    }

    #[test]
    fn already_confirmed_payment_goes_straight_from_pending_to_paid() {
        let f = paid(100, 100, 6_000);
        assert_eq!(next_status(&f), Ok(Some((Paid, Outcome::default()))));
    }

    #[test]
    fn partial_payment_is_pending_and_underpaid() {
        assert_eq!(
            eval(paid(60, 60, 6_000)),
            (Pending, outcome(true, false, false))
        );
        // The status does not change, so there is no transition.
        assert_eq!(next_status(&paid(60, 60, 6_000)), Ok(None));
    }

    #[test]
    fn partial_payment_expires_underpaid() {
        let f = PaymentFacts {
            now_ms: EXPIRES + 1,
            ..paid(60, 60, 6_000)
        };
        assert_eq!(eval(f), (Expired, outcome(true, false, false)));
    }

    #[test]
    fn overpayment_is_paid_and_overpaid() {
        assert_eq!(
            eval(paid(150, 150, 6_000)),
            (Paid, outcome(false, true, false))
        );
        assert_eq!(
            eval(paid(101, 0, 6_000)),
            (Confirming, outcome(false, true, false))
        );
    }

    #[test]
    fn underpayment_within_tolerance_counts_as_full_and_not_underpaid() {
        let f = PaymentFacts {
            tolerance: Amount::from(5),
            first_full_payment_at_ms: Some(6_000),
            ..paid(95, 95, 6_000)
        };
        assert_eq!(eval(f), (Paid, Outcome::default()));
        let unconfirmed = PaymentFacts {
            confirmed_total: Amount::from(90),
            ..f
        };
        assert_eq!(eval(unconfirmed), (Confirming, Outcome::default()));
    }

    #[test]
    fn underpayment_beyond_tolerance_is_underpaid() {
        let f = PaymentFacts {
            tolerance: Amount::from(5),
            ..paid(94, 94, 6_000)
        };
        assert_eq!(eval(f), (Pending, outcome(true, false, false)));
    }

    #[test]
    fn tolerance_never_turns_nothing_paid_into_paid() {
        let f = PaymentFacts {
            tolerance: Amount::from(100),
            ..facts()
        };
        assert_eq!(eval(f), (Pending, Outcome::default()));
        let huge = PaymentFacts {
            tolerance: Amount::MAX,
            paid_total: Amount::from(1),
            ..facts()
        };
        // No overflow: MAX tolerance plus a payment saturates and covers the due.
        assert_eq!(eval(huge).0, Confirming);
    }

    #[test]
    fn payment_seen_before_the_deadline_is_not_late_even_if_confirmed_after() {
        let confirming = PaymentFacts {
            status: Confirming,
            now_ms: EXPIRES + 500,
            ..paid(100, 0, 9_000)
        };
        assert_eq!(next_status(&confirming), Ok(None));
        assert_eq!(eval(confirming), (Confirming, Outcome::default()));
        let confirmed = PaymentFacts {
            confirmed_total: Amount::from(100),
            ..confirming
        };
        assert_eq!(
            next_status(&confirmed),
            Ok(Some((Paid, Outcome::default())))
        );
        // Even after the monitoring window has closed.
        let much_later = PaymentFacts {
            now_ms: MONITOR_UNTIL + 1,
            ..confirmed
        };
        assert_eq!(eval(much_later), (Paid, Outcome::default()));
    }

    #[test]
    fn late_payment_within_the_window_revives_an_expired_invoice_as_paid_late() {
        let late = PaymentFacts {
            status: Expired,
            ..paid(100, 0, EXPIRES + 1_000)
        };
        assert_eq!(
            next_status(&late),
            Ok(Some((Confirming, outcome(false, false, true))))
        );
        let confirmed = PaymentFacts {
            confirmed_total: Amount::from(100),
            ..late
        };
        assert_eq!(
            next_status(&confirmed),
            Ok(Some((Paid, outcome(false, false, true))))
        );
        let confirming_then_paid = PaymentFacts {
            status: Confirming,
            ..confirmed
        };
        assert_eq!(
            next_status(&confirming_then_paid),
            Ok(Some((Paid, outcome(false, false, true))))
        );
    }

    #[test]
    fn payment_seen_exactly_at_the_deadline_is_late() {
        let f = PaymentFacts {
            status: Expired,
            ..paid(100, 100, EXPIRES)
        };
        assert_eq!(eval(f), (Paid, outcome(false, false, true)));
    }

    #[test]
    fn late_payment_completing_an_earlier_partial_one_is_late() {
        // 60 before the deadline, the other 40 after it: full only late.
        let f = PaymentFacts {
            status: Expired,
            now_ms: EXPIRES + 2_000,
            first_full_payment_at_ms: Some(EXPIRES + 2_000),
            ..paid(100, 100, 6_000)
        };
        assert_eq!(eval(f), (Paid, outcome(false, false, true)));
    }

    #[test]
    fn payment_after_the_monitoring_window_does_not_revive_an_expired_invoice() {
        let f = PaymentFacts {
            status: Expired,
            ..paid(100, 100, MONITOR_UNTIL)
        };
        assert_eq!(eval(f), (Expired, Outcome::default()));
        assert_eq!(next_status(&f), Ok(None));
        let overpaid = PaymentFacts {
            status: Expired,
            ..paid(120, 120, MONITOR_UNTIL + 5)
        };
        assert_eq!(eval(overpaid), (Expired, outcome(false, true, false)));
    }

    #[test]
    fn listener_catching_up_after_the_window_counts_a_payment_seen_within_it() {
        let f = PaymentFacts {
            status: Expired,
            now_ms: MONITOR_UNTIL + 60_000,
            ..paid(100, 100, EXPIRES + 1)
        };
        assert_eq!(
            next_status(&f),
            Ok(Some((Paid, outcome(false, false, true))))
        );
    }

    #[test]
    fn pending_invoice_first_evaluated_after_the_window_with_a_too_late_payment_expires() {
        let f = paid(100, 100, MONITOR_UNTIL + 1);
        assert_eq!(next_status(&f), Ok(Some((Expired, Outcome::default()))));
    }

    #[test]
    fn full_payment_without_a_time_is_taken_as_seen_now() {
        let on_time = PaymentFacts {
            first_full_payment_at_ms: None,
            ..paid(100, 100, 6_000)
        };
        assert_eq!(eval(on_time), (Paid, Outcome::default()));
        let late = PaymentFacts {
            status: Expired,
            now_ms: EXPIRES + 1,
            ..on_time
        };
        assert_eq!(eval(late), (Paid, outcome(false, false, true)));
        let too_late = PaymentFacts {
            status: Expired,
            now_ms: MONITOR_UNTIL,
            ..on_time
        };
        assert_eq!(eval(too_late), (Expired, Outcome::default()));
    }

    #[test]
    fn reorg_removing_the_payment_moves_it_back_to_pending() {
        for status in [Confirming, Paid] {
            let f = PaymentFacts { status, ..facts() };
            assert_eq!(
                next_status(&f),
                Ok(Some((Pending, Outcome::default()))),
                "{status}"
            );
            assert_eq!(
                EventKind::for_transition(status, Pending),
                EventKind::Reverted
            );
        }
    }

    #[test]
    fn reorg_removing_confirmations_moves_paid_back_to_confirming() {
        let f = PaymentFacts {
            status: Paid,
            ..paid(100, 0, 6_000)
        };
        assert_eq!(next_status(&f), Ok(Some((Confirming, Outcome::default()))));
    }

    #[test]
    fn reorg_removing_a_late_payment_after_the_deadline_expires_it() {
        for status in [Confirming, Paid] {
            let f = PaymentFacts {
                status,
                now_ms: EXPIRES + 3_000,
                ..facts()
            };
            assert_eq!(
                next_status(&f),
                Ok(Some((Expired, Outcome::default()))),
                "{status}"
            );
        }
        // A partial payment survives the reorg: expired and underpaid.
        let partial = PaymentFacts {
            status: Paid,
            now_ms: EXPIRES + 3_000,
            ..paid(30, 30, 6_000)
        };
        assert_eq!(
            next_status(&partial),
            Ok(Some((Expired, outcome(true, false, false))))
        );
    }

    #[test]
    fn cancelled_invoice_stays_cancelled_whatever_is_paid() {
        for f in [
            facts(),
            paid(100, 100, 6_000),
            paid(40, 0, 6_000),
            PaymentFacts {
                now_ms: MONITOR_UNTIL + 1,
                ..paid(100, 100, EXPIRES + 1)
            },
        ] {
            let f = PaymentFacts {
                status: Cancelled,
                ..f
            };
            assert_eq!(evaluate(&f).status, Cancelled);
            assert_eq!(next_status(&f), Ok(None));
        }
        let partial = PaymentFacts {
            status: Cancelled,
            ..paid(40, 0, 6_000)
        };
        assert_eq!(eval(partial).1, outcome(true, false, false));
    }

    #[test]
    fn an_expired_invoice_never_reopens_even_if_the_clock_steps_back() {
        // The host's clock reads before the deadline (stepped back after the
        // expiry): still expired, no illegal change asked for.
        let f = PaymentFacts {
            status: Expired,
            ..facts()
        };
        assert_eq!(evaluate(&f).status, Expired);
        assert_eq!(next_status(&f), Ok(None));
    }

    #[test]
    fn every_change_evaluate_can_ask_for_from_consistent_facts_is_legal() {
        let times = [
            5_000,
            EXPIRES - 1,
            EXPIRES,
            EXPIRES + 1,
            MONITOR_UNTIL,
            MONITOR_UNTIL + 1,
        ];
        for &status in InvoiceStatus::ALL {
            for &now in &times {
                for (paid_total, confirmed) in
                    [(0, 0), (50, 0), (50, 50), (100, 0), (100, 100), (150, 150)]
                {
                    for &seen in &times {
                        if seen > now {
                            continue;
                        }
                        // Only an expired invoice past its deadline is consistent.
                        if status == Expired && now < EXPIRES {
                            continue;
                        }
                        let f = PaymentFacts {
                            status,
                            now_ms: now,
                            paid_total: Amount::from(paid_total),
                            confirmed_total: Amount::from(confirmed),
                            first_full_payment_at_ms: (paid_total >= 100).then_some(seen),
                            ..facts()
                        };
                        assert!(next_status(&f).is_ok(), "{f:?}");
                    }
                }
            }
        }
    }
}
