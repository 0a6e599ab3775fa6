//! The live dashboard on every HTTP listener (`GET /ui`): one page, embedded in
//! the binary (no CDN, no build step), that polls `GET /ui/status.json` every two
//! seconds and draws the shard map, each group's replicas and leader, and this
//! listener's store operations per second and p99 over the last five minutes.
//!
//! `status.json` is the cluster survey of `diskv admin status`
//! ([`crate::client::survey`]), taken at most once a second whatever the number of
//! open pages, plus [`super::traffic`]'s series. With a token file it needs a
//! `read` token, like every GET but `/health`; the page asks for one on a 401.

use super::front::Front;
use crate::client::survey::{survey, ClusterStatus, SurveyOptions};
use crate::rpc::conn::Connections;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The page: HTML, CSS and script in one file.
const PAGE: &str = include_str!("page.html");

/// How long one survey answers every page that asks.
const SURVEY_MAX_AGE: Duration = Duration::from_secs(1);

/// Seconds per point of the traffic graphs (60 points over five minutes).
const TRAFFIC_STEP_SECS: u64 = 5;

/// The last survey, shared by every page polling this listener.
#[derive(Default)]
pub struct SurveyCache {
    last: Mutex<Option<(Instant, Arc<ClusterStatus>)>>,
    /// Connections to the group replicas, kept from one survey to the next.
    conns: Connections,
}

impl SurveyCache {
    /// A survey of the cluster whose shardmasters are `masters`, at most
    /// [`SURVEY_MAX_AGE`] old. Pages asking while one runs wait for it.
    pub async fn get(&self, masters: &[String]) -> Arc<ClusterStatus> {
        let mut last = self.last.lock().await;
        if let Some((at, status)) = &*last {
            if at.elapsed() < SURVEY_MAX_AGE {
                return status.clone();
            }
        }
        let status =
            Arc::new(survey(masters.to_vec(), &SurveyOptions::default(), &self.conns).await);
        *last = Some((Instant::now(), status.clone()));
        status
    }
}

/// What `GET /ui/status.json` answers.
#[derive(Serialize)]
struct Dashboard<'a> {
    cluster: &'a ClusterStatus,
    traffic: Vec<super::traffic::TrafficPoint>,
    traffic_step_secs: u64,
}

/// `GET /ui`: the page.
pub async fn page() -> Response {
    let mut r = (StatusCode::OK, PAGE).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /ui/status.json`: the survey and the traffic series.
pub async fn status(State(front): State<Arc<Front>>) -> Response {
    let cluster = front.survey().get(front.pool().masters()).await;
    let body = Dashboard {
        cluster: &cluster,
        traffic: front.metrics().traffic(TRAFFIC_STEP_SECS),
        traffic_step_secs: TRAFFIC_STEP_SECS,
    };
    match serde_json::to_string(&body) {
        Ok(json) => {
            let mut r = (StatusCode::OK, json).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the status: {e}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        // No script, style or font from anywhere but this listener.
        for outside in ["http://", "https://", "//cdn", "@import"] {
            assert!(!PAGE.contains(outside), "the page names {outside}");
        }
        assert!(PAGE.contains("/ui/status.json"));
    }
}
