//! Auto Scaling in front of moto, for the two lifecycle-hook operations moto (5.2)
//! does not implement: `RecordLifecycleActionHeartbeat` and
//! `CompleteLifecycleAction` answer here, following the Query protocol
//! (`Action=…&Version=2011-01-01` form bodies, XML answers); every other request
//! is forwarded to moto unchanged. Point the SDK at it with
//! `AWS_ENDPOINT_URL_AUTO_SCALING`.
//!
//! It also fronts ELBv2 (`AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2`): moto ends a
//! deregistration at once, so [`AsgFront::keep_draining`] makes
//! `DescribeTargetHealth` of a target group list a deregistered instance as
//! `draining` (`Target.DeregistrationInProgress`), as AWS does for the whole
//! deregistration delay, until [`AsgFront::stop_draining`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One lifecycle call answered here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleCall {
    /// `CompleteLifecycleAction` or `RecordLifecycleActionHeartbeat`.
    pub action: String,
    pub group: String,
    pub hook: String,
    pub instance: String,
    pub token: Option<String>,
    /// `CONTINUE` / `ABANDON` for a completion.
    pub result: Option<String>,
    pub at: SystemTime,
}

#[derive(Debug)]
struct Inner {
    moto: String,
    calls: Vec<LifecycleCall>,
    /// (target group ARN, instance id, port) listed as `draining`.
    draining: Vec<(String, String, i32)>,
}

/// moto's `DescribeTargetHealth` answer with the held targets added as `draining`
/// where moto no longer lists them.
fn with_draining(answer: &str, held: &[(String, String, i32)]) -> String {
    let mut out = answer.to_string();
    for (_, id, port) in held {
        if out.contains(&format!("<Id>{id}</Id>")) {
            continue;
        }
        let member = format!(
            "<member><Target><Id>{id}</Id><Port>{port}</Port></Target><HealthCheckPort>{port}</HealthCheckPort><TargetHealth><State>draining</State><Reason>Target.DeregistrationInProgress</Reason><Description>Target deregistration is in progress</Description></TargetHealth></member>"
        );
        let list = format!("<TargetHealthDescriptions>{member}</TargetHealthDescriptions>");
        out = if out.contains("</TargetHealthDescriptions>") {
            out.replacen(
                "</TargetHealthDescriptions>",
                &format!("{member}</TargetHealthDescriptions>"),
                1,
            )
        } else if out.contains("<TargetHealthDescriptions/>") {
            out.replacen("<TargetHealthDescriptions/>", &list, 1)
        } else if out.contains("<DescribeTargetHealthResult/>") {
            out.replacen(
                "<DescribeTargetHealthResult/>",
                &format!("<DescribeTargetHealthResult>{list}</DescribeTargetHealthResult>"),
                1,
            )
        } else {
            out.replacen(
                "<DescribeTargetHealthResult>",
                &format!("<DescribeTargetHealthResult>{list}"),
                1,
            )
        };
    }
    out
}

type Shared = Arc<Mutex<Inner>>;

/// The running front; stops on drop.
#[derive(Debug)]
pub struct AsgFront {
    addr: SocketAddr,
    state: Shared,
    task: tokio::task::JoinHandle<()>,
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    url_form(&String::from_utf8_lossy(body))
}

fn url_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (crate::url_decode(k), crate::url_decode(v)))
        .collect()
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "text/xml")], body).into_response()
}

fn validation(message: &str) -> Response {
    xml(
        StatusCode::BAD_REQUEST,
        format!(
            "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>{message}</Message></Error><RequestId>reflex-front</RequestId></ErrorResponse>"
        ),
    )
}

async fn handle(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let fields = form(&body);
    let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let action = get("Action").unwrap_or_default();
    if matches!(
        action.as_str(),
        "CompleteLifecycleAction" | "RecordLifecycleActionHeartbeat"
    ) {
        let (Some(group), Some(hook), Some(instance)) = (
            get("AutoScalingGroupName"),
            get("LifecycleHookName"),
            get("InstanceId"),
        ) else {
            return validation(
                "AutoScalingGroupName, LifecycleHookName and InstanceId are required",
            );
        };
        let result = get("LifecycleActionResult");
        if action == "CompleteLifecycleAction"
            && !matches!(result.as_deref(), Some("CONTINUE" | "ABANDON"))
        {
            return validation("LifecycleActionResult must be CONTINUE or ABANDON");
        }
        s.lock().unwrap().calls.push(LifecycleCall {
            action: action.clone(),
            group,
            hook,
            instance,
            token: get("LifecycleActionToken"),
            result,
            at: SystemTime::now(),
        });
        return xml(
            StatusCode::OK,
            format!(
                "<{action}Response xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><{action}Result/><ResponseMetadata><RequestId>reflex-front</RequestId></ResponseMetadata></{action}Response>"
            ),
        );
    }
    let (moto, held) = {
        let inner = s.lock().unwrap();
        let group = get("TargetGroupArn").unwrap_or_default();
        let held: Vec<_> = inner
            .draining
            .iter()
            .filter(|(tg, _, _)| action == "DescribeTargetHealth" && *tg == group)
            .cloned()
            .collect();
        (inner.moto.clone(), held)
    };
    let url = format!("{moto}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut req = reqwest::Client::new()
        .request(method, url)
        .body(body.to_vec());
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("text/xml")
                .to_string();
            let bytes = r.bytes().await.unwrap_or_default();
            if held.is_empty() || !status.is_success() {
                return (status, [("content-type", ct)], bytes).into_response();
            }
            let text = with_draining(&String::from_utf8_lossy(&bytes), &held);
            (status, [("content-type", ct)], text).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

impl AsgFront {
    /// A front for the moto at `moto_endpoint`.
    pub async fn start(moto_endpoint: &str) -> Self {
        let state = Arc::new(Mutex::new(Inner {
            moto: moto_endpoint.trim_end_matches('/').to_string(),
            calls: Vec::new(),
            draining: Vec::new(),
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let (addr, task) = crate::serve(0, app, "Auto Scaling front").await;
        Self { addr, state, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<LifecycleCall> {
        self.state.lock().unwrap().calls.clone()
    }

    /// From now on, `instance` (once moto no longer lists it in `target_group`) is
    /// listed there as `draining` on `port`: a deregistration delay that does not end.
    pub fn keep_draining(&self, target_group: &str, instance: &str, port: i32) {
        self.state.lock().unwrap().draining.push((
            target_group.to_string(),
            instance.to_string(),
            port,
        ));
    }

    /// The deregistration delay of `instance` is over.
    pub fn stop_draining(&self, instance: &str) {
        self.state
            .lock()
            .unwrap()
            .draining
            .retain(|(_, id, _)| id != instance);
    }
}

impl Drop for AsgFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
