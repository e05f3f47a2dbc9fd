//! The `list` table. Pure: views and the time in, text out.

use chrono::{DateTime, Utc};

use super::text::{clean, columns, human_duration};
use super::view::GateView;

/// Which gates `list` shows.
pub fn is_listed(view: &GateView, all: bool) -> bool {
    all || !view.ended
}

/// The table: NAME, PIPELINERUN, STATUS, APPROVALS, APPROVERS, AGE, DEADLINE, CAN-DECIDE,
/// with NAMESPACE first when listing all namespaces (as kubectl does), and WAITING-UNTIL
/// after DEADLINE when a listed gate holds an approval that takes effect later.
pub fn table(views: &[GateView], all_namespaces: bool, now: DateTime<Utc>) -> String {
    let waiting_until = views.iter().any(|v| !v.pending.is_empty());
    let mut header = vec![
        "NAME",
        "PIPELINERUN",
        "STATUS",
        "APPROVALS",
        "APPROVERS",
        "AGE",
        "DEADLINE",
        "CAN-DECIDE",
    ];
    if waiting_until {
        header.insert(7, "WAITING-UNTIL");
    }
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
    for view in views {
        let mut row = vec![
            clean(&view.name),
            clean(view.pipeline_run.as_deref().unwrap_or("-")),
            clean(&view.status),
            approvals(view),
            approvers(view),
            view.created
                .map(|created| human_duration(now - created))
                .unwrap_or_else(|| "<unknown>".into()),
            time_left(view, now),
            can_decide(view).into(),
        ];
        if waiting_until {
            let until = match (&view.pending.first(), view.waiting_until) {
                (None, _) => "-".into(),
                (Some(_), Some(at)) if at > now => human_duration(at - now),
                (Some(_), Some(_)) => "now".into(),
                (Some(_), None) => "never".into(),
            };
            row.insert(7, until);
        }
        if all_namespaces {
            row.insert(0, clean(&view.namespace));
        }
        rows.push(row);
    }
    columns(&rows)
}

/// What to say when nothing is listed (kubectl says "No resources found in ci namespace.").
pub fn nothing_listed(all: bool, namespace: Option<&str>) -> String {
    let which = if all { "No gates" } else { "No waiting gates" };
    match namespace {
        Some(namespace) => format!("{which} found in {namespace} namespace."),
        None => format!("{which} found."),
    }
}

/// `1/2`: approvals received of those required.
fn approvals(view: &GateView) -> String {
    match view.min_approvals {
        Some(required) => format!("{}/{required}", view.approvals),
        None => "-".into(),
    }
}

/// Comma-separated without spaces, so that the column stays one word for `awk` and friends.
fn approvers(view: &GateView) -> String {
    if view.approvers.is_empty() {
        return "-".into();
    }
    clean(&view.approvers.join(","))
}

/// How long until the deadline.
pub fn time_left(view: &GateView, now: DateTime<Utc>) -> String {
    if view.ended || view.started.is_none() {
        return "-".into();
    }
    match view.deadline {
        None => "none".into(),
        Some(deadline) if deadline <= now => "passed".into(),
        Some(deadline) => human_duration(deadline - now),
    }
}

/// `yes`, `no`, `-` (ended) or `?` (unknown).
fn can_decide(view: &GateView) -> &'static str {
    match view.can_decide {
        _ if view.ended => "-",
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::view::tests::{alice, mallory, pending_gate, rejected_gate, run, waiting_gate};

    fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    fn views(identity: &crate::cli::view::Identity) -> Vec<GateView> {
        [waiting_gate(), rejected_gate(), pending_gate()]
            .into_iter()
            .map(|value| GateView::new(&run(value), Some(identity), now()))
            .collect()
    }

    #[test]
    fn golden_table_of_all_gates_for_an_approver() {
        let expected = "\
NAME                    PIPELINERUN     STATUS             APPROVALS   APPROVERS                      AGE    DEADLINE   CAN-DECIDE
release-x7k2p-approve   release-x7k2p   AwaitingApproval   1/2         alice,group:release-managers   120m   22h        yes
deploy-q9z-gate         deploy-q9z      Rejected           0/1         carol,dave                     2d4h   -          -
hotfix-gate             -               Pending            -           -                              30s    -          ?
";
        assert_eq!(table(&views(&alice()), false, now()), expected);
    }

    #[test]
    fn golden_table_across_namespaces_for_someone_who_may_not_decide() {
        let listed: Vec<GateView> = views(&mallory())
            .into_iter()
            .filter(|v| is_listed(v, false))
            .collect();
        let expected = "\
NAMESPACE   NAME                    PIPELINERUN     STATUS             APPROVALS   APPROVERS                      AGE    DEADLINE   CAN-DECIDE
ci          release-x7k2p-approve   release-x7k2p   AwaitingApproval   1/2         alice,group:release-managers   120m   22h        no
ci          hotfix-gate             -               Pending            -           -                              30s    -          ?
";
        assert_eq!(table(&listed, true, now()), expected);
    }

    #[test]
    fn the_deadline_column_tells_none_and_passed_apart() {
        let mut view = GateView::new(&run(waiting_gate()), None, now());
        let late: DateTime<Utc> = "2026-11-23T10:00:01Z".parse().unwrap();
        assert_eq!(time_left(&view, late), "passed");
        assert_eq!(time_left(&view, now()), "22h");
        view.deadline = None;
        assert_eq!(time_left(&view, now()), "none");
    }

    #[test]
    fn by_default_only_gates_that_have_not_ended_are_listed() {
        let all = views(&alice());
        let waiting: Vec<&str> = all
            .iter()
            .filter(|v| is_listed(v, false))
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(waiting, ["release-x7k2p-approve", "hotfix-gate"]);
        assert_eq!(all.iter().filter(|v| is_listed(v, true)).count(), 3);
    }

    #[test]
    fn an_empty_list_says_where_it_looked() {
        assert_eq!(
            nothing_listed(false, Some("ci")),
            "No waiting gates found in ci namespace."
        );
        assert_eq!(nothing_listed(true, None), "No gates found.");
    }

    #[test]
    fn waiting_until_appears_when_a_listed_gate_holds_an_approval() {
        use crate::cli::view::tests::windowed_gate;
        let listed = [
            GateView::new(&run(windowed_gate()), Some(&alice()), now()),
            GateView::new(&run(waiting_gate()), Some(&alice()), now()),
        ];
        let expected = "\
NAME                    PIPELINERUN     STATUS             APPROVALS   APPROVERS                      AGE    DEADLINE   WAITING-UNTIL   CAN-DECIDE
release-x7k2p-approve   release-x7k2p   AwaitingApproval   0/2         alice,group:release-managers   120m   22h        21h             yes
release-x7k2p-approve   release-x7k2p   AwaitingApproval   1/2         alice,group:release-managers   120m   22h        -               yes
";
        assert_eq!(table(&listed, false, now()), expected);
    }
}
