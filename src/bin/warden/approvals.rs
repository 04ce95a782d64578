//! `warden approvals list|show|decide`: an approver's client. It reads
//! approvals over HTTP with a bearer token, and decides them signing the
//! decision with the approver's own key through the user-action flow
//! (`/auth/action/init`, `/auth/action`, then the decision with
//! `X-DFNS-USERACTION`), as the Dfns SDK would.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use warden::credential::PrivateKey;
use warden::http::USER_ACTION_HEADER;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the server is and who calls it.
#[derive(Debug, Args)]
pub struct Connection {
    /// The server's origin.
    #[arg(long, env = "WARDEN_URL", default_value = "http://127.0.0.1:8080", global = true)]
    url: String,
    /// The bearer token.
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
}

/// What to do with approvals.
#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Lists approvals (pending ones unless told otherwise).
    List {
        /// Pending, Approved, Denied or Expired; `all` for every status.
        #[arg(long, default_value = "Pending")]
        status: String,
    },
    /// Shows one approval: the activity, the policies, the groups and the decisions.
    Show {
        /// `ap-...`
        id: String,
    },
    /// Approves or denies, signed with your key.
    Decide {
        /// `ap-...`
        id: String,
        /// Approve.
        #[arg(long, conflicts_with = "deny", required_unless_present = "deny")]
        approve: bool,
        /// Deny.
        #[arg(long)]
        deny: bool,
        /// Why (recorded with the decision).
        #[arg(long, default_value = "")]
        reason: String,
        /// Your PKCS#8 PEM private key (Ed25519, P-256, secp256k1 or RSA);
        /// without it the decision is sent unsigned (bearer only).
        #[arg(long, value_name = "FILE", requires = "credential_id")]
        key: Option<PathBuf>,
        /// The id of the credential registered for that key.
        #[arg(long, value_name = "ID")]
        credential_id: Option<String>,
    },
}

/// Runs one command; the answer is printed on stdout.
pub async fn run(connection: Connection, command: ApprovalsCommand) -> Result<(), String> {
    let token = connection.token.clone().ok_or("a bearer token is needed: --token or WARDEN_TOKEN")?;
    let client = Client { http: awc::Client::builder().timeout(TIMEOUT).finish(), base: connection.url, token };
    match command {
        ApprovalsCommand::List { status } => {
            let query = if status.eq_ignore_ascii_case("all") { String::new() } else { format!("?status={status}") };
            let page = client.call("GET", &format!("/v2/policy-approvals{query}"), None, None).await?;
            for approval in page["items"].as_array().into_iter().flatten() {
                println!("{}", summary(approval));
            }
        }
        ApprovalsCommand::Show { id } => {
            let approval = client.call("GET", &format!("/v2/policy-approvals/{id}"), None, None).await?;
            println!("{}", serde_json::to_string_pretty(&approval).unwrap_or_default());
        }
        ApprovalsCommand::Decide { id, approve, deny: _, reason, key, credential_id } => {
            let value = if approve { "Approved" } else { "Denied" };
            let path = format!("/v2/policy-approvals/{id}/decisions");
            let body = json!({ "value": value, "reason": reason }).to_string();
            let user_action = match (key, credential_id) {
                (Some(key), Some(credential_id)) => {
                    let pem = std::fs::read_to_string(&key)
                        .map_err(|e| format!("cannot read key file `{}`: {e}", key.display()))?;
                    let key = PrivateKey::from_pem(&pem).map_err(|e| format!("key file `{}` {e}", key.display()))?;
                    Some(client.sign("POST", &path, &body, &key, &credential_id).await?)
                }
                _ => None,
            };
            let approval = client.call("POST", &path, Some(body), user_action).await?;
            println!("{}", summary(&approval));
        }
    }
    Ok(())
}

/// One line about an approval.
fn summary(approval: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let groups: Vec<String> = approval["approvalGroups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| format!("{} {}/{}", text(&g["name"]), g["approvedBy"].as_array().map_or(0, Vec::len), g["quorum"]))
        .collect();
    format!(
        "{}  {}  initiator {}  activity {} ({})  groups [{}]  expires {}",
        text(&approval["id"]),
        text(&approval["status"]),
        text(&approval["initiatorId"]),
        text(&approval["activity"]["id"]),
        text(&approval["activity"]["kind"]),
        groups.join(", "),
        text(&approval["expirationDate"]),
    )
}

struct Client {
    http: awc::Client,
    base: String,
    token: String,
}

impl Client {
    /// One request; a problem document answer becomes its `detail`.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        user_action: Option<String>,
    ) -> Result<Value, String> {
        let method = awc::http::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let url = format!("{}{path}", self.base.trim_end_matches('/'));
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(user_action) = user_action {
            request = request.insert_header((USER_ACTION_HEADER, user_action));
        }
        let sent = match body {
            Some(body) => request.insert_header(("Content-Type", "application/json")).send_body(body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| format!("{url}: {e}"))?;
        let bytes = response.body().limit(16 * 1024 * 1024).await.map_err(|e| format!("{url}: {e}"))?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if response.status().is_success() {
            Ok(answer)
        } else {
            let detail = answer["detail"].as_str().unwrap_or("no detail");
            Err(format!("{} {url}: {detail}", response.status()))
        }
    }

    /// The user-action token for one request, signed with `key`.
    async fn sign(
        &self,
        method: &str,
        path: &str,
        body: &str,
        key: &PrivateKey,
        credential_id: &str,
    ) -> Result<String, String> {
        let init = json!({
            "userActionPayload": body, "userActionHttpMethod": method,
            "userActionHttpPath": path, "userActionServerKind": "Api",
        });
        let challenge = self.call("POST", "/auth/action/init", Some(init.to_string()), None).await?;
        let client_data = json!({ "type": "key.get", "challenge": challenge["challenge"] }).to_string();
        let encode = |bytes: &[u8]| warden::credential::BASE64URL.encode(bytes);
        let assertion = json!({
            "challengeIdentifier": challenge["challengeIdentifier"],
            "firstFactor": { "kind": "Key", "credentialAssertion": {
                "credId": credential_id,
                "clientData": encode(client_data.as_bytes()),
                "signature": encode(&key.sign(client_data.as_bytes())),
            }},
        });
        let answer = self.call("POST", "/auth/action", Some(assertion.to_string()), None).await?;
        answer["userAction"].as_str().map(str::to_owned).ok_or_else(|| "no userAction in the answer".to_owned())
    }
}
