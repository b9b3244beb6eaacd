//! Sending a sealed document into a room as an `io.govtrust.sealed` event.

use govtrust_verifier::sealed::{SealedContent, SEALED_EVENT_TYPE};
use matrix_sdk::ruma::{OwnedEventId, RoomId};
use matrix_sdk::Client;

use super::error::SealError;

/// Sends a sealed content into `room_id` (encrypted if the room is), with
/// the client of the agency account the seal names as sender.
pub async fn send_sealed(
    client: &Client,
    room_id: &RoomId,
    content: &SealedContent,
) -> Result<OwnedEventId, SealError> {
    let room = client
        .get_room(room_id)
        .ok_or_else(|| SealError::Matrix(format!("not in room {room_id}")))?;
    let value = serde_json::to_value(content).map_err(|e| SealError::Document(e.to_string()))?;
    let sent = room
        .send_raw(SEALED_EVENT_TYPE, value)
        .await
        .map_err(|e| SealError::Matrix(e.to_string()))?;
    Ok(sent.response.event_id)
}
