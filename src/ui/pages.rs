//! The web page's HTML: "waiting for me", all gates, and one gate. Server-rendered (maud
//! escapes every value), usable without JavaScript; `live.js` only re-fetches the page's
//! `<main>` when a gate changes. Pure: views, the user and the time in, HTML out.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use crate::cli::text::human_duration;
use crate::cli::view::{GateView, Identity};

/// A PipelineRun as the gate's page shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PipelineSummary {
    /// Its name.
    pub name: String,
    /// Its `Succeeded` reason (`Running`, `Succeeded`, `Failed`, ...).
    pub state: String,
    /// Its tasks: (pipeline task, kind, state).
    pub tasks: Vec<(String, String, String)>,
}

/// What the page around the content knows.
pub struct Frame<'a> {
    /// The signed-in user.
    pub me: &'a Identity,
    /// The time.
    pub now: DateTime<Utc>,
    /// A CSRF token for this user's forms.
    pub csrf: &'a str,
    /// The Tekton Dashboard's base URL, for links to PipelineRuns.
    pub dashboard: Option<&'a str>,
}

/// What the list of all gates is filtered by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// `waiting`, `ended` or all.
    pub state: Option<String>,
    /// Only gates of this Pipeline.
    pub pipeline: Option<String>,
}

impl Filters {
    /// Whether `view` passes.
    pub fn admit(&self, view: &GateView) -> bool {
        let state = match self.state.as_deref() {
            Some("waiting") => !view.ended,
            Some("ended") => view.ended,
            _ => true,
        };
        state
            && self.namespace.as_ref().is_none_or(|n| *n == view.namespace)
            && self
                .pipeline
                .as_ref()
                .is_none_or(|p| view.pipeline.as_ref() == Some(p))
    }
}

/// A whole page, or only its `<main>` (what `live.js` asks for).
pub fn page(frame: &Frame<'_>, title: &str, main: Markup, whole: bool) -> String {
    if !whole {
        return main.into_string();
    }
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tekton approvals" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/live.js" defer {}
            }
            body {
                header {
                    nav aria-label="Gates" {
                        a href="/" { "Waiting for me" }
                        a href="/gates" { "All gates" }
                    }
                    span.me { "Signed in as " strong { (frame.me.username) } }
                }
                (main)
            }
        }
    }
    .into_string()
}

/// The gates `me` may decide now.
pub fn waiting(frame: &Frame<'_>, views: &[GateView]) -> Markup {
    html! {
        main #main data-live="all" {
            h1 { "Waiting for me" }
            @if views.is_empty() {
                p.empty role="status" { "No gate is waiting for you." }
            }
            @for view in views {
                (card(frame, view))
            }
        }
    }
}

/// All gates the user may read, filtered.
pub fn all(frame: &Frame<'_>, views: &[GateView], filters: &Filters) -> Markup {
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        main #main data-live="all" {
            h1 { "All gates" }
            form.filters method="get" action="/gates" {
                label { "Namespace " input name="namespace" value=(value(&filters.namespace)); }
                label { "Pipeline " input name="pipeline" value=(value(&filters.pipeline)); }
                label { "State "
                    select name="state" {
                        @for (choice, text) in [("", "any"), ("waiting", "waiting"), ("ended", "ended")] {
                            option value=(choice) selected[filters.state.as_deref().unwrap_or("") == choice] { (text) }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
            table.gates {
                thead { tr { th { "Gate" } th { "PipelineRun" } th { "Status" } th { "Approvals" } th { "Deadline" } th { "You" } } }
                tbody {
                    @for view in views {
                        tr data-gate=(gate_key(view)) {
                            td { a href=(gate_href(view)) { (view.namespace) " / " (view.name) } }
                            td { (view.pipeline_run.as_deref().unwrap_or("-")) }
                            td.status { (view.status) }
                            td { (approvals(view)) }
                            td { (deadline(view, frame.now)) }
                            td { (if view.can_decide == Some(true) { "may decide" } else if view.ended { "-" } else { "may not decide" }) }
                        }
                    }
                }
            }
            @if views.is_empty() { p.empty role="status" { "No gates match." } }
        }
    }
}

/// One gate, in full: where it belongs, who decided, earlier attempts, and the form.
pub fn gate(
    frame: &Frame<'_>,
    view: &GateView,
    pipeline: Option<&PipelineSummary>,
    notice: Option<&Notice>,
) -> Markup {
    html! {
        main #main data-live=(gate_key(view)) {
            p.crumbs { a href="/" { "Waiting for me" } " › " (view.namespace) " / " (view.name) }
            @match notice {
                Some(Notice::Recorded(text)) => p.notice role="status" { (text) },
                Some(Notice::Denied(text)) => p.notice.denied role="alert" { (text) },
                None => {},
            }
            (card(frame, view))
            @if let Some(pipeline) = pipeline {
                section.pipeline aria-labelledby="pipeline-title" {
                    h2 #pipeline-title { "PipelineRun " (pipeline.name) }
                    p { "State: " strong { (pipeline.state) }
                        @if let Some(base) = frame.dashboard {
                            " · " a href=(dashboard_href(base, &view.namespace, &pipeline.name)) { "Open in the Tekton Dashboard" }
                        }
                    }
                    ul.tasks {
                        @for (task, kind, state) in &pipeline.tasks {
                            li { (task) " (" (kind) "): " span.state { (state) } }
                        }
                    }
                }
            }
            @if !view.results.is_empty() {
                section aria-labelledby="results-title" {
                    h2 #results-title { "Results" }
                    dl.results {
                        @for result in &view.results { dt { (result.name) } dd { (result.value) } }
                    }
                }
            }
            @if !view.earlier_attempts.is_empty() {
                section aria-labelledby="attempts-title" {
                    h2 #attempts-title { "Earlier attempts" }
                    ol {
                        @for attempt in &view.earlier_attempts {
                            li {
                                (attempt.status) ": " (attempt.status_message)
                                @if let Some(at) = attempt.completed { " at " (timestamp(at)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A gate's summary, with the decision form when `me` may decide it.
fn card(frame: &Frame<'_>, view: &GateView) -> Markup {
    html! {
        article.gate data-gate=(gate_key(view)) aria-labelledby=(format!("title-{}", gate_key(view))) {
            h2 id=(format!("title-{}", gate_key(view))) {
                a href=(gate_href(view)) { (view.namespace) " / " (view.name) }
            }
            p.status role="status" {
                span.reason { (view.status) }
                @if !view.status_message.is_empty() { ": " span.message { (view.status_message) } }
            }
            @if !view.message.is_empty() { p.ask { (view.message) } }
            dl.facts {
                @if let Some(run) = &view.pipeline_run { dt { "PipelineRun" } dd { (run) } }
                @if let Some(task) = &view.pipeline_task { dt { "Pipeline task" } dd { (task) } }
                @if let Some(requester) = &view.requested_by { dt { "Requested by" } dd { (requester) } }
                dt { "Approvers" } dd { (if view.approvers.is_empty() { "-".to_string() } else { view.approvers.join(", ") }) }
                dt { "Approvals" } dd.approvals { (approvals(view)) }
                dt { "Deadline" } dd { (deadline(view, frame.now)) }
                @if let Some(window) = &view.approval_window { dt { "Approval window" } dd { (window) } }
            }
            @if !view.decisions.is_empty() {
                h3 { "Decisions" }
                ol.timeline {
                    @for record in &view.decisions {
                        li {
                            time datetime=(timestamp(record.time)) { (timestamp(record.time)) }
                            " " strong { (record.user) } " " (record.decision.past_tense())
                            @if let Some(at) = record.effective_at { " (effective " (timestamp(at)) ")" }
                            @if !record.comment.is_empty() { ": " q { (record.comment) } }
                        }
                    }
                }
            }
            @if view.can_decide == Some(true) && !view.ended {
                (form(frame, view))
            }
        }
    }
}

fn form(frame: &Frame<'_>, view: &GateView) -> Markup {
    let id = gate_key(view);
    html! {
        form.decide method="post" action=(format!("{}/decision", gate_href(view))) {
            input type="hidden" name="csrf" value=(frame.csrf);
            @for input in &view.inputs {
                label {
                    (input.name)
                    @if !input.description.is_empty() { " (" (input.description) ")" }
                    " "
                    @if input.choices.is_empty() {
                        input name=(format!("input-{}", input.name)) value=(input.default.clone().unwrap_or_default()) required[input.required];
                    } @else {
                        select name=(format!("input-{}", input.name)) required[input.required] {
                            @if !input.required { option value="" { "(default)" } }
                            @for choice in &input.choices {
                                option value=(choice) selected[input.default.as_deref() == Some(choice.as_str())] { (choice) }
                            }
                        }
                    }
                }
            }
            label for=(format!("comment-{id}")) { "Comment" }
            textarea id=(format!("comment-{id}")) name="comment" maxlength="1024" rows="2" {}
            div.buttons {
                button.approve type="submit" name="decision" value="approve" { "Approve" }
                button.reject type="submit" name="decision" value="reject" { "Reject" }
            }
        }
    }
}

/// `ns/name`, which `live.js` matches change events against.
pub fn gate_key(view: &GateView) -> String {
    format!("{}/{}", view.namespace, view.name)
}

/// The gate's page: the deep link notifications point to.
pub fn gate_href(view: &GateView) -> String {
    format!("/gates/{}/{}", view.namespace, view.name)
}

fn dashboard_href(base: &str, namespace: &str, pipeline_run: &str) -> String {
    format!(
        "{}/#/namespaces/{namespace}/pipelineruns/{pipeline_run}",
        base.trim_end_matches('/')
    )
}

fn approvals(view: &GateView) -> String {
    match view.min_approvals {
        Some(required) => format!("{} of {required}", view.approvals),
        None => "-".into(),
    }
}

fn deadline(view: &GateView, now: DateTime<Utc>) -> Markup {
    match view.deadline {
        Some(at) if !view.ended && at > now => html! {
            time datetime=(timestamp(at)) title=(timestamp(at)) { "in " (human_duration(at - now)) }
            " (" (timestamp(at)) ")"
        },
        Some(at) => html! { time datetime=(timestamp(at)) { (timestamp(at)) } },
        None => html! { "none" },
    }
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The stylesheet: plain, readable, high contrast.
pub const STYLE: &str = r#"
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #f6f7f9; }
header { display: flex; justify-content: space-between; align-items: center; padding: .75rem 1.5rem; background: #1f3a5f; color: #fff; }
header a { color: #fff; margin-right: 1.25rem; font-weight: 600; }
main { max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
article.gate, section { background: #fff; border: 1px solid #d0d5dd; border-radius: 8px; padding: 1rem 1.25rem; margin-bottom: 1rem; }
article.gate h2 { margin: 0 0 .25rem; font-size: 1.15rem; }
.status .reason { font-weight: 700; }
dl.facts, dl.results { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dt { color: #4a5565; }
dd { margin: 0; }
ol.timeline { padding-left: 1.25rem; }
form.decide { display: grid; gap: .5rem; margin-top: .75rem; }
form.decide textarea, form.decide input, form.decide select { font: inherit; padding: .35rem; }
.buttons button { font: inherit; font-weight: 600; padding: .45rem 1.2rem; border-radius: 6px; border: 0; cursor: pointer; margin-right: .5rem; }
button.approve { background: #1a7f37; color: #fff; }
button.reject { background: #b42318; color: #fff; }
.notice { background: #e6f4ea; border: 1px solid #1a7f37; padding: .5rem .75rem; border-radius: 6px; }
.notice.denied { background: #fdecea; border-color: #b42318; }
table.gates { width: 100%; border-collapse: collapse; background: #fff; }
table.gates th, table.gates td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid #e4e7ec; }
form.filters { display: flex; gap: 1rem; flex-wrap: wrap; align-items: end; margin-bottom: 1rem; }
a:focus, button:focus, input:focus, select:focus, textarea:focus { outline: 3px solid #f79009; outline-offset: 1px; }
"#;

/// The live updates: on a change to a gate this page shows, fetch the page again and swap
/// its `<main>`, keeping what the user is typing.
pub const LIVE_JS: &str = r#"
(function () {
  if (!window.EventSource) return;
  var events = new EventSource('/events');
  var busy = false, again = false;
  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      var response = await fetch(location.pathname + location.search, { headers: { 'X-Fragment': '1' }, credentials: 'same-origin' });
      if (response.ok) {
        var typed = {};
        document.querySelectorAll('main textarea, main input:not([type=hidden]), main select').forEach(function (field) {
          if (document.activeElement === field || field.value) typed[(field.closest('[data-gate]') || {}).dataset?.gate + '|' + field.name] = field.value;
        });
        var holder = document.createElement('div');
        holder.innerHTML = await response.text();
        var fresh = holder.querySelector('main');
        if (fresh) {
          fresh.querySelectorAll('textarea, input:not([type=hidden]), select').forEach(function (field) {
            var key = (field.closest('[data-gate]') || {}).dataset?.gate + '|' + field.name;
            if (key in typed) field.value = typed[key];
          });
          document.querySelector('main').replaceWith(fresh);
        }
      }
    } finally {
      busy = false;
      if (again) { again = false; refresh(); }
    }
  }
  // A change the stream did not bring (a proxy that dropped it, a laptop that slept) shows
  // within a minute anyway.
  setInterval(function () { if (!document.hidden) refresh(); }, 60000);
  // A stream that broke and came back may have missed changes: look again.
  var opened = false;
  events.addEventListener('open', function () {
    if (opened) refresh();
    opened = true;
  });
  events.addEventListener('gate', function (event) {
    var main = document.querySelector('main');
    if (!main) return;
    var live = main.dataset.live;
    if (live === 'all' || live === event.data || event.data === '*') refresh();
  });
})();
"#;

/// A page for a refusal (not signed in through the proxy, no such gate, ...).
pub fn refusal(title: &str, message: &str) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } link rel="stylesheet" href="/static/style.css"; }
            body { main { h1 { (title) } p.notice.denied role="alert" { (message) } } }
        }
    }
    .into_string()
}

/// What the gate's page says above the gate after a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Recorded: what the controller said, or that it is being recorded.
    Recorded(String),
    /// Refused: the webhook's (or the API server's) words.
    Denied(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::view::tests::{
        alice, mallory, now, rejected_gate, run, waiting_gate, windowed_gate,
    };

    fn frame<'a>(me: &'a Identity) -> Frame<'a> {
        Frame {
            me,
            now: now(),
            csrf: "token-1",
            dashboard: Some("https://dashboard.example/"),
        }
    }

    fn view(value: serde_json::Value, me: &Identity) -> GateView {
        GateView::new(&run(value), Some(me), now())
    }

    #[test]
    fn an_approver_sees_the_gate_with_approve_and_reject_and_the_forms_token() {
        let me = alice();
        let html = waiting(&frame(&me), &[view(waiting_gate(), &me)]).into_string();
        assert!(
            html.contains(
                r#"<a href="/gates/ci/release-x7k2p-approve">ci / release-x7k2p-approve</a>"#
            ),
            "{html}"
        );
        assert!(html.contains("Release v1.2 to production?"));
        assert!(html.contains("1 of 2"));
        assert!(html.contains(r#"<button class="approve" type="submit" name="decision" value="approve">Approve</button>"#));
        assert!(html.contains(r#"<input type="hidden" name="csrf" value="token-1">"#));
        assert!(html.contains(r#"action="/gates/ci/release-x7k2p-approve/decision""#));
        assert!(html.contains("bob</strong> approved"), "the timeline");
        assert!(html.contains("in 22h"), "the deadline, relative");
    }

    #[test]
    fn someone_who_may_not_decide_sees_no_form() {
        let me = mallory();
        let html = gate(&frame(&me), &view(waiting_gate(), &me), None, None).into_string();
        assert!(html.contains("release-x7k2p-approve"));
        assert!(!html.contains("<form"), "{html}");
        assert!(!html.contains("Approve</button>"));
        // Nor on an ended gate, for an approver.
        let carol = Identity {
            username: "carol".into(),
            groups: vec![],
        };
        let html = gate(&frame(&carol), &view(rejected_gate(), &carol), None, None).into_string();
        assert!(!html.contains("<form"), "{html}");
    }

    #[test]
    fn every_value_is_escaped() {
        let me = alice();
        let mut value = waiting_gate();
        value["status"]["extraFields"]["message"] = serde_json::json!("<script>alert(1)</script>");
        let html = waiting(&frame(&me), &[view(value, &me)]).into_string();
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn inputs_become_fields_of_the_form() {
        let me = alice();
        let html = gate(&frame(&me), &view(windowed_gate(), &me), None, None).into_string();
        assert!(
            html.contains(r#"<select name="input-target" required>"#),
            "{html}"
        );
        assert!(html.contains(r#"<option value="production">production</option>"#));
        assert!(html.contains(r#"<input name="input-replicas" value="3">"#));
        assert!(html.contains("Mon-Fri 09:00-17:00 UTC"), "the window");
    }

    #[test]
    fn the_gate_page_links_the_pipelinerun_to_the_dashboard_and_says_what_happened() {
        let me = alice();
        let pipeline = PipelineSummary {
            name: "release-x7k2p".into(),
            state: "Running".into(),
            tasks: vec![("build".into(), "TaskRun".into(), "Succeeded".into())],
        };
        let notice = Notice::Denied("alice may not decide".into());
        let html = gate(
            &frame(&me),
            &view(waiting_gate(), &me),
            Some(&pipeline),
            Some(&notice),
        )
        .into_string();
        assert!(
            html.contains(
                r#"href="https://dashboard.example/#/namespaces/ci/pipelineruns/release-x7k2p""#
            ),
            "{html}"
        );
        assert!(html.contains("build (TaskRun): <span class=\"state\">Succeeded</span>"));
        assert!(html.contains(r#"<p class="notice denied" role="alert">alice may not decide</p>"#));
    }

    #[test]
    fn filters_select_by_namespace_state_and_pipeline() {
        let me = alice();
        let waiting_view = view(waiting_gate(), &me);
        let ended_view = view(rejected_gate(), &me);
        let state = |s: &str| Filters {
            state: Some(s.into()),
            ..Default::default()
        };
        assert!(state("waiting").admit(&waiting_view) && !state("waiting").admit(&ended_view));
        assert!(state("ended").admit(&ended_view) && !state("ended").admit(&waiting_view));
        let namespace = Filters {
            namespace: Some("prod".into()),
            ..Default::default()
        };
        assert!(namespace.admit(&ended_view) && !namespace.admit(&waiting_view));
        let pipeline = Filters {
            pipeline: Some("release".into()),
            ..Default::default()
        };
        assert!(
            !pipeline.admit(&waiting_view),
            "no tekton.dev/pipeline label"
        );
        assert!(Filters::default().admit(&waiting_view));
    }

    #[test]
    fn the_whole_page_has_the_frame_and_a_fragment_only_main() {
        let me = alice();
        let main = waiting(&frame(&me), &[]);
        let whole = page(&frame(&me), "Waiting for me", main.clone(), true);
        assert!(whole.starts_with("<!DOCTYPE html>"));
        assert!(whole.contains(r#"<script src="/static/live.js" defer></script>"#));
        assert!(whole.contains("Signed in as <strong>alice</strong>"));
        let fragment = page(&frame(&me), "Waiting for me", main, false);
        assert!(fragment.starts_with("<main"), "{fragment}");
        assert!(fragment.contains("No gate is waiting for you."));
    }
}
