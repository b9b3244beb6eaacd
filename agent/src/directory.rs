//! Finding attestation events: in the rooms the client is in (its local
//! state store, kept current by sync) and in the directory rooms (read
//! from the homeserver without joining; they are world-readable).
//!
//! Rooms are only transport: whatever is found here is untrusted until
//! `check` verified it. The filters here (redactions, publishers) keep
//! noise out, not attackers.

use std::collections::HashSet;
use std::time::Duration;

use govtrust_verifier::event::EVENT_TYPE;
use matrix_sdk::deserialized_responses::RawAnySyncOrStrippedState;
use matrix_sdk::ruma::api::client::state::get_state_event_for_key;
use matrix_sdk::ruma::api::error::ErrorKind;
use matrix_sdk::ruma::events::StateEventType;
use matrix_sdk::ruma::{OwnedRoomAliasId, OwnedRoomId, OwnedUserId, RoomId};
use matrix_sdk::RoomState;
use serde::Deserialize;

use crate::clock::now_secs;
use crate::config::{DirectoryRoom, DEFAULT_DIRECTORY_ALIAS_LOCALPART};
use crate::error::AgentError;
use crate::state::{EvalState, Inner};

/// Largest Matrix event (the spec's limit), for reading the directory.
const MAX_EVENT_BYTES: usize = 65_536;
/// How long a directory alias stays resolved (seconds); a read error
/// resolves it again sooner.
const DIRECTORY_TTL: i64 = 3600;

/// One attestation event found for a state key.
pub(crate) struct Candidate {
    /// The event's content, as JSON.
    pub content: Vec<u8>,
    /// Where it was found (a room ID, or `cache`), for the logs.
    pub source: String,
}

impl Inner {
    /// Finds the attestation events stored under `state_key`: in the joined
    /// rooms (local state store) and the directory rooms (homeserver).
    /// Returns them and whether some source could not be read.
    pub(crate) async fn lookup(
        &self,
        state: &mut EvalState,
        state_key: &str,
    ) -> (Vec<Candidate>, bool) {
        let mut found = Vec::new();
        let mut unavailable = false;
        let mut read_locally: HashSet<OwnedRoomId> = HashSet::new();
        if self.settings.scan_joined_rooms {
            for room in self.client.joined_rooms() {
                read_locally.insert(room.room_id().to_owned());
                self.read_local(&room, state_key, &mut found).await;
            }
        }
        for directory in self.settings.directory_rooms.clone() {
            let room_id = match self.resolve(state, &directory).await {
                Ok(Some(id)) => id,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(?directory, error = %e, "directory room unavailable");
                    unavailable = true;
                    continue;
                }
            };
            if read_locally.contains(&room_id) {
                continue;
            }
            if let Some(room) = self
                .client
                .get_room(&room_id)
                .filter(|r| r.state() == RoomState::Joined)
            {
                self.read_local(&room, state_key, &mut found).await;
                continue;
            }
            match self.read_remote(&room_id, state_key).await {
                Ok(Some(candidate)) => found.push(candidate),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(room = %room_id, error = %e, "directory read failed");
                    // The alias may point elsewhere now.
                    state.directories.remove(&directory);
                    unavailable = true;
                }
            }
        }
        (found, unavailable)
    }

    /// Reads the state event from a joined room's local state store.
    async fn read_local(&self, room: &matrix_sdk::Room, state_key: &str, out: &mut Vec<Candidate>) {
        let event = room
            .get_state_event(StateEventType::from(EVENT_TYPE), state_key)
            .await;
        if let Ok(Some(RawAnySyncOrStrippedState::Sync(raw))) = event {
            if let Some(content) =
                accepted_content(raw.json().get(), &self.settings.publishers, room.room_id())
            {
                out.push(Candidate {
                    content,
                    source: room.room_id().to_string(),
                });
            }
        }
    }

    /// Reads the state event from the homeserver (the room is
    /// world-readable; no join needed). `Ok(None)` if there is none.
    ///
    /// A plain GET with the client's HTTP client and access token: most
    /// devices have no attestation, and matrix-sdk's request path logs
    /// every 404 as an error. If the token is refused (it may need a
    /// refresh), the request goes through matrix-sdk instead.
    async fn read_remote(
        &self,
        room_id: &RoomId,
        state_key: &str,
    ) -> Result<Option<Candidate>, AgentError> {
        let candidate = |json: &str| {
            accepted_content(json, &self.settings.publishers, room_id).map(|content| Candidate {
                content,
                source: room_id.to_string(),
            })
        };
        if let Some(token) = self.client.access_token() {
            let mut url = self.client.homeserver();
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty().extend([
                    "_matrix",
                    "client",
                    "v3",
                    "rooms",
                    room_id.as_str(),
                    "state",
                    EVENT_TYPE,
                    state_key,
                ]);
            }
            url.set_query(Some("format=event"));
            let response = self
                .client
                .http_client()
                .get(url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map_err(|e| AgentError::matrix("reading the directory room", e))?;
            match response.status().as_u16() {
                200 => {
                    // Matrix caps events at 64 KiB; read no more than that.
                    let mut response = response;
                    let mut body = Vec::new();
                    while let Some(chunk) = response
                        .chunk()
                        .await
                        .map_err(|e| AgentError::matrix("reading the directory room", e))?
                    {
                        if body.len() + chunk.len() > MAX_EVENT_BYTES {
                            return Err(AgentError::matrix(
                                "reading the directory room",
                                "event larger than 64 KiB",
                            ));
                        }
                        body.extend_from_slice(&chunk);
                    }
                    return Ok(candidate(&String::from_utf8_lossy(&body)));
                }
                404 => return Ok(None),
                401 => {}
                status => {
                    return Err(AgentError::matrix(
                        "reading the directory room",
                        format!("HTTP {status}"),
                    ))
                }
            }
        }
        let mut request = get_state_event_for_key::v3::Request::new(
            room_id.to_owned(),
            StateEventType::from(EVENT_TYPE),
            state_key.to_owned(),
        );
        // The whole event, so the sender can be checked.
        request.format = get_state_event_for_key::v3::StateEventFormat::Event;
        match self.client.send(request).await {
            Ok(response) => Ok(candidate(response.event_or_content.get())),
            Err(e) if matches!(e.client_api_error_kind(), Some(ErrorKind::NotFound)) => Ok(None),
            Err(e) => Err(AgentError::matrix("reading the directory room", e)),
        }
    }

    /// The room ID of a directory room (cached until the next sweep);
    /// `Ok(None)` if its alias does not exist.
    async fn resolve(
        &self,
        state: &mut EvalState,
        directory: &DirectoryRoom,
    ) -> Result<Option<OwnedRoomId>, AgentError> {
        if let Some((id, at)) = state.directories.get(directory) {
            if now_secs().saturating_sub(*at) < DIRECTORY_TTL {
                return Ok(id.clone());
            }
        }
        let alias = match directory {
            DirectoryRoom::Id(id) => return Ok(Some(id.clone())),
            DirectoryRoom::Alias(alias) => alias.clone(),
            DirectoryRoom::OwnServer => OwnedRoomAliasId::try_from(format!(
                "#{DEFAULT_DIRECTORY_ALIAS_LOCALPART}:{}",
                self.own_user.server_name()
            ))
            .map_err(|e| AgentError::Config(format!("directory alias: {e}")))?,
        };
        let id = match self.client.resolve_room_alias(&alias).await {
            Ok(response) => Some(response.room_id),
            Err(e) if matches!(e.client_api_error_kind(), Some(ErrorKind::NotFound)) => None,
            Err(e) => return Err(AgentError::matrix("resolving the directory alias", e)),
        };
        state
            .directories
            .insert(directory.clone(), (id.clone(), now_secs()));
        Ok(id)
    }
}

/// The content of an attestation event, if it is one to consider:
/// not redacted, and from an accepted publisher (any sender if
/// `publishers` is empty).
fn accepted_content(json: &str, publishers: &[OwnedUserId], room_id: &RoomId) -> Option<Vec<u8>> {
    #[derive(Deserialize)]
    struct Event {
        sender: Option<String>,
        content: Option<serde_json::Value>,
    }
    let event: Event = serde_json::from_str(json).ok()?;
    let content = event.content?;
    if content.as_object().is_none_or(|o| o.is_empty()) {
        return None;
    }
    if !publishers.is_empty()
        && !event
            .sender
            .as_deref()
            .is_some_and(|s| publishers.iter().any(|p| p.as_str() == s))
    {
        tracing::warn!(room = %room_id, sender = ?event.sender, "attestation from an unexpected sender ignored");
        return None;
    }
    serde_json::to_vec(&content).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(sender: &str, content: serde_json::Value) -> String {
        serde_json::json!({ "sender": sender, "content": content }).to_string()
    }

    #[test]
    fn redacted_or_malformed_events_are_skipped() {
        let room = <&RoomId>::try_from("!dir:example.org").unwrap();
        let none: &[OwnedUserId] = &[];
        let redacted = event("@bot:example.org", serde_json::json!({}));
        assert_eq!(accepted_content(&redacted, none, room), None);
        assert_eq!(accepted_content("not json", none, room), None);
        assert_eq!(
            accepted_content(r#"{"sender":"@bot:example.org"}"#, none, room),
            None
        );
        let content = serde_json::json!({ "chain": ["x"] });
        assert_eq!(
            accepted_content(&event("@anyone:example.org", content.clone()), none, room),
            serde_json::to_vec(&content).ok()
        );
    }

    #[test]
    fn only_listed_publishers_count_when_some_are_listed() {
        let room = <&RoomId>::try_from("!dir:example.org").unwrap();
        let publishers = [OwnedUserId::try_from("@bot:example.org").unwrap()];
        let content = serde_json::json!({ "chain": ["x"] });
        assert!(accepted_content(
            &event("@bot:example.org", content.clone()),
            &publishers,
            room
        )
        .is_some());
        assert_eq!(
            accepted_content(
                &event("@mallory:example.org", content.clone()),
                &publishers,
                room
            ),
            None
        );
        let no_sender = serde_json::json!({ "content": content }).to_string();
        assert_eq!(accepted_content(&no_sender, &publishers, room), None);
    }
}
