//! Pure merge of freshly computed conditions with the previous ones: `lastTransitionTime`
//! only moves when the status flips, so an unchanged app produces an identical status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition as computed from observations, before it gets its timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Computed {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl Computed {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Computed {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

pub fn merge(
    old: &[Condition],
    computed: Vec<Computed>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    computed
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" }.to_string();
            let last_transition_time = old
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == status)
                .map(|o| o.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: c.type_.to_string(),
                status,
                reason: c.reason,
                message: c.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    /// An unchanged status keeps its transition time, so a resync writes nothing.
    #[test]
    fn keeps_transition_time_while_status_is_unchanged() {
        let first = merge(
            &[],
            vec![Computed::new("Ready", true, "Ready", "all good")],
            Some(1),
            &at(100),
        );
        assert_eq!(first[0].last_transition_time, at(100));
        let second = merge(
            &first,
            vec![Computed::new("Ready", true, "Ready", "still good")],
            Some(2),
            &at(200),
        );
        assert_eq!(second[0].last_transition_time, at(100));
        assert_eq!(second[0].message, "still good");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    /// A flip moves the transition time to now.
    #[test]
    fn flip_moves_transition_time() {
        let first = merge(
            &[],
            vec![Computed::new("Ready", true, "Ready", "ok")],
            Some(1),
            &at(100),
        );
        let second = merge(
            &first,
            vec![Computed::new("Ready", false, "ZoneLost", "bad")],
            Some(1),
            &at(300),
        );
        assert_eq!(second[0].status, "False");
        assert_eq!(second[0].reason, "ZoneLost");
        assert_eq!(second[0].last_transition_time, at(300));
    }

    /// Conditions no longer computed (a removed section) disappear.
    #[test]
    fn dropped_conditions_disappear() {
        let first = merge(
            &[],
            vec![
                Computed::new("Ready", true, "Ready", ""),
                Computed::new("IngressReady", true, "Provisioned", ""),
            ],
            Some(1),
            &at(1),
        );
        let second = merge(
            &first,
            vec![Computed::new("Ready", true, "Ready", "")],
            Some(2),
            &at(2),
        );
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].type_, "Ready");
    }
}
