from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HandshakeMessage(_message.Message):
    __slots__ = ("client_hello", "server_hello", "client_finish")
    class ClientHello(_message.Message):
        __slots__ = ("ephemeral", "static", "payload")
        EPHEMERAL_FIELD_NUMBER: _ClassVar[int]
        STATIC_FIELD_NUMBER: _ClassVar[int]
        PAYLOAD_FIELD_NUMBER: _ClassVar[int]
        ephemeral: bytes
        static: bytes
        payload: bytes
        def __init__(self, ephemeral: _Optional[bytes] = ..., static: _Optional[bytes] = ..., payload: _Optional[bytes] = ...) -> None: ...
    class ServerHello(_message.Message):
        __slots__ = ("ephemeral", "static", "payload")
        EPHEMERAL_FIELD_NUMBER: _ClassVar[int]
        STATIC_FIELD_NUMBER: _ClassVar[int]
        PAYLOAD_FIELD_NUMBER: _ClassVar[int]
        ephemeral: bytes
        static: bytes
        payload: bytes
        def __init__(self, ephemeral: _Optional[bytes] = ..., static: _Optional[bytes] = ..., payload: _Optional[bytes] = ...) -> None: ...
    class ClientFinish(_message.Message):
        __slots__ = ("static", "payload")
        STATIC_FIELD_NUMBER: _ClassVar[int]
        PAYLOAD_FIELD_NUMBER: _ClassVar[int]
        static: bytes
        payload: bytes
        def __init__(self, static: _Optional[bytes] = ..., payload: _Optional[bytes] = ...) -> None: ...
    CLIENT_HELLO_FIELD_NUMBER: _ClassVar[int]
    SERVER_HELLO_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FINISH_FIELD_NUMBER: _ClassVar[int]
    client_hello: HandshakeMessage.ClientHello
    server_hello: HandshakeMessage.ServerHello
    client_finish: HandshakeMessage.ClientFinish
    def __init__(self, client_hello: _Optional[_Union[HandshakeMessage.ClientHello, _Mapping]] = ..., server_hello: _Optional[_Union[HandshakeMessage.ServerHello, _Mapping]] = ..., client_finish: _Optional[_Union[HandshakeMessage.ClientFinish, _Mapping]] = ...) -> None: ...

class CertChain(_message.Message):
    __slots__ = ("leaf", "intermediate")
    class NoiseCertificate(_message.Message):
        __slots__ = ("details", "signature")
        class Details(_message.Message):
            __slots__ = ("serial", "issuer_serial", "key", "not_before", "not_after")
            SERIAL_FIELD_NUMBER: _ClassVar[int]
            ISSUER_SERIAL_FIELD_NUMBER: _ClassVar[int]
            KEY_FIELD_NUMBER: _ClassVar[int]
            NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
            NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
            serial: int
            issuer_serial: int
            key: bytes
            not_before: int
            not_after: int
            def __init__(self, serial: _Optional[int] = ..., issuer_serial: _Optional[int] = ..., key: _Optional[bytes] = ..., not_before: _Optional[int] = ..., not_after: _Optional[int] = ...) -> None: ...
        DETAILS_FIELD_NUMBER: _ClassVar[int]
        SIGNATURE_FIELD_NUMBER: _ClassVar[int]
        details: bytes
        signature: bytes
        def __init__(self, details: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...
    LEAF_FIELD_NUMBER: _ClassVar[int]
    INTERMEDIATE_FIELD_NUMBER: _ClassVar[int]
    leaf: CertChain.NoiseCertificate
    intermediate: CertChain.NoiseCertificate
    def __init__(self, leaf: _Optional[_Union[CertChain.NoiseCertificate, _Mapping]] = ..., intermediate: _Optional[_Union[CertChain.NoiseCertificate, _Mapping]] = ...) -> None: ...

class ClientPayload(_message.Message):
    __slots__ = ("username", "passive", "user_agent", "push_name", "connect_type", "connect_reason", "device", "device_pairing_data", "pull")
    class UserAgent(_message.Message):
        __slots__ = ("platform", "app_version")
        class AppVersion(_message.Message):
            __slots__ = ("primary", "secondary", "tertiary")
            PRIMARY_FIELD_NUMBER: _ClassVar[int]
            SECONDARY_FIELD_NUMBER: _ClassVar[int]
            TERTIARY_FIELD_NUMBER: _ClassVar[int]
            primary: int
            secondary: int
            tertiary: int
            def __init__(self, primary: _Optional[int] = ..., secondary: _Optional[int] = ..., tertiary: _Optional[int] = ...) -> None: ...
        PLATFORM_FIELD_NUMBER: _ClassVar[int]
        APP_VERSION_FIELD_NUMBER: _ClassVar[int]
        platform: int
        app_version: ClientPayload.UserAgent.AppVersion
        def __init__(self, platform: _Optional[int] = ..., app_version: _Optional[_Union[ClientPayload.UserAgent.AppVersion, _Mapping]] = ...) -> None: ...
    class DevicePairingRegistrationData(_message.Message):
        __slots__ = ("e_regid", "e_keytype", "e_ident", "e_skey_id", "e_skey_val", "e_skey_sig", "build_hash", "device_props")
        E_REGID_FIELD_NUMBER: _ClassVar[int]
        E_KEYTYPE_FIELD_NUMBER: _ClassVar[int]
        E_IDENT_FIELD_NUMBER: _ClassVar[int]
        E_SKEY_ID_FIELD_NUMBER: _ClassVar[int]
        E_SKEY_VAL_FIELD_NUMBER: _ClassVar[int]
        E_SKEY_SIG_FIELD_NUMBER: _ClassVar[int]
        BUILD_HASH_FIELD_NUMBER: _ClassVar[int]
        DEVICE_PROPS_FIELD_NUMBER: _ClassVar[int]
        e_regid: bytes
        e_keytype: bytes
        e_ident: bytes
        e_skey_id: bytes
        e_skey_val: bytes
        e_skey_sig: bytes
        build_hash: bytes
        device_props: bytes
        def __init__(self, e_regid: _Optional[bytes] = ..., e_keytype: _Optional[bytes] = ..., e_ident: _Optional[bytes] = ..., e_skey_id: _Optional[bytes] = ..., e_skey_val: _Optional[bytes] = ..., e_skey_sig: _Optional[bytes] = ..., build_hash: _Optional[bytes] = ..., device_props: _Optional[bytes] = ...) -> None: ...
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSIVE_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    PUSH_NAME_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONNECT_REASON_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_PAIRING_DATA_FIELD_NUMBER: _ClassVar[int]
    PULL_FIELD_NUMBER: _ClassVar[int]
    username: int
    passive: bool
    user_agent: ClientPayload.UserAgent
    push_name: str
    connect_type: int
    connect_reason: int
    device: int
    device_pairing_data: ClientPayload.DevicePairingRegistrationData
    pull: bool
    def __init__(self, username: _Optional[int] = ..., passive: _Optional[bool] = ..., user_agent: _Optional[_Union[ClientPayload.UserAgent, _Mapping]] = ..., push_name: _Optional[str] = ..., connect_type: _Optional[int] = ..., connect_reason: _Optional[int] = ..., device: _Optional[int] = ..., device_pairing_data: _Optional[_Union[ClientPayload.DevicePairingRegistrationData, _Mapping]] = ..., pull: _Optional[bool] = ...) -> None: ...

class ADVDeviceIdentity(_message.Message):
    __slots__ = ("raw_id", "timestamp", "key_index", "account_type", "device_type")
    RAW_ID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    KEY_INDEX_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    raw_id: int
    timestamp: int
    key_index: int
    account_type: int
    device_type: int
    def __init__(self, raw_id: _Optional[int] = ..., timestamp: _Optional[int] = ..., key_index: _Optional[int] = ..., account_type: _Optional[int] = ..., device_type: _Optional[int] = ...) -> None: ...

class ADVSignedDeviceIdentity(_message.Message):
    __slots__ = ("details", "account_signature_key", "account_signature", "device_signature")
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_SIGNATURE_KEY_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    details: bytes
    account_signature_key: bytes
    account_signature: bytes
    device_signature: bytes
    def __init__(self, details: _Optional[bytes] = ..., account_signature_key: _Optional[bytes] = ..., account_signature: _Optional[bytes] = ..., device_signature: _Optional[bytes] = ...) -> None: ...

class ADVSignedDeviceIdentityHMAC(_message.Message):
    __slots__ = ("details", "hmac", "account_type")
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    HMAC_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_TYPE_FIELD_NUMBER: _ClassVar[int]
    details: bytes
    hmac: bytes
    account_type: int
    def __init__(self, details: _Optional[bytes] = ..., hmac: _Optional[bytes] = ..., account_type: _Optional[int] = ...) -> None: ...

class MessageKey(_message.Message):
    __slots__ = ("remote_jid", "from_me", "id", "participant")
    REMOTE_JID_FIELD_NUMBER: _ClassVar[int]
    FROM_ME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
    remote_jid: str
    from_me: bool
    id: str
    participant: str
    def __init__(self, remote_jid: _Optional[str] = ..., from_me: _Optional[bool] = ..., id: _Optional[str] = ..., participant: _Optional[str] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("conversation", "sender_key_distribution_message", "image_message", "contact_message", "location_message", "extended_text_message", "document_message", "audio_message", "video_message", "protocol_message", "sticker_message", "device_sent_message", "message_context_info", "ephemeral_message", "reaction_message", "poll_creation_message", "poll_creation_message_v3")
    class ImageMessage(_message.Message):
        __slots__ = ("url", "mimetype", "caption", "file_sha256", "file_length", "height", "width", "media_key", "file_enc_sha256")
        URL_FIELD_NUMBER: _ClassVar[int]
        MIMETYPE_FIELD_NUMBER: _ClassVar[int]
        CAPTION_FIELD_NUMBER: _ClassVar[int]
        FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
        FILE_LENGTH_FIELD_NUMBER: _ClassVar[int]
        HEIGHT_FIELD_NUMBER: _ClassVar[int]
        WIDTH_FIELD_NUMBER: _ClassVar[int]
        MEDIA_KEY_FIELD_NUMBER: _ClassVar[int]
        FILE_ENC_SHA256_FIELD_NUMBER: _ClassVar[int]
        url: str
        mimetype: str
        caption: str
        file_sha256: bytes
        file_length: int
        height: int
        width: int
        media_key: bytes
        file_enc_sha256: bytes
        def __init__(self, url: _Optional[str] = ..., mimetype: _Optional[str] = ..., caption: _Optional[str] = ..., file_sha256: _Optional[bytes] = ..., file_length: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., media_key: _Optional[bytes] = ..., file_enc_sha256: _Optional[bytes] = ...) -> None: ...
    class VideoMessage(_message.Message):
        __slots__ = ("url", "mimetype", "file_sha256", "file_length", "seconds", "media_key", "caption")
        URL_FIELD_NUMBER: _ClassVar[int]
        MIMETYPE_FIELD_NUMBER: _ClassVar[int]
        FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
        FILE_LENGTH_FIELD_NUMBER: _ClassVar[int]
        SECONDS_FIELD_NUMBER: _ClassVar[int]
        MEDIA_KEY_FIELD_NUMBER: _ClassVar[int]
        CAPTION_FIELD_NUMBER: _ClassVar[int]
        url: str
        mimetype: str
        file_sha256: bytes
        file_length: int
        seconds: int
        media_key: bytes
        caption: str
        def __init__(self, url: _Optional[str] = ..., mimetype: _Optional[str] = ..., file_sha256: _Optional[bytes] = ..., file_length: _Optional[int] = ..., seconds: _Optional[int] = ..., media_key: _Optional[bytes] = ..., caption: _Optional[str] = ...) -> None: ...
    class AudioMessage(_message.Message):
        __slots__ = ("url", "mimetype", "file_sha256", "file_length", "seconds", "ptt", "media_key")
        URL_FIELD_NUMBER: _ClassVar[int]
        MIMETYPE_FIELD_NUMBER: _ClassVar[int]
        FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
        FILE_LENGTH_FIELD_NUMBER: _ClassVar[int]
        SECONDS_FIELD_NUMBER: _ClassVar[int]
        PTT_FIELD_NUMBER: _ClassVar[int]
        MEDIA_KEY_FIELD_NUMBER: _ClassVar[int]
        url: str
        mimetype: str
        file_sha256: bytes
        file_length: int
        seconds: int
        ptt: bool
        media_key: bytes
        def __init__(self, url: _Optional[str] = ..., mimetype: _Optional[str] = ..., file_sha256: _Optional[bytes] = ..., file_length: _Optional[int] = ..., seconds: _Optional[int] = ..., ptt: _Optional[bool] = ..., media_key: _Optional[bytes] = ...) -> None: ...
    class DocumentMessage(_message.Message):
        __slots__ = ("url", "mimetype", "title", "file_sha256", "file_length", "page_count", "media_key", "file_name")
        URL_FIELD_NUMBER: _ClassVar[int]
        MIMETYPE_FIELD_NUMBER: _ClassVar[int]
        TITLE_FIELD_NUMBER: _ClassVar[int]
        FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
        FILE_LENGTH_FIELD_NUMBER: _ClassVar[int]
        PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
        MEDIA_KEY_FIELD_NUMBER: _ClassVar[int]
        FILE_NAME_FIELD_NUMBER: _ClassVar[int]
        url: str
        mimetype: str
        title: str
        file_sha256: bytes
        file_length: int
        page_count: int
        media_key: bytes
        file_name: str
        def __init__(self, url: _Optional[str] = ..., mimetype: _Optional[str] = ..., title: _Optional[str] = ..., file_sha256: _Optional[bytes] = ..., file_length: _Optional[int] = ..., page_count: _Optional[int] = ..., media_key: _Optional[bytes] = ..., file_name: _Optional[str] = ...) -> None: ...
    class StickerMessage(_message.Message):
        __slots__ = ("url", "file_sha256", "file_enc_sha256", "media_key", "mimetype", "height", "width", "file_length")
        URL_FIELD_NUMBER: _ClassVar[int]
        FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
        FILE_ENC_SHA256_FIELD_NUMBER: _ClassVar[int]
        MEDIA_KEY_FIELD_NUMBER: _ClassVar[int]
        MIMETYPE_FIELD_NUMBER: _ClassVar[int]
        HEIGHT_FIELD_NUMBER: _ClassVar[int]
        WIDTH_FIELD_NUMBER: _ClassVar[int]
        FILE_LENGTH_FIELD_NUMBER: _ClassVar[int]
        url: str
        file_sha256: bytes
        file_enc_sha256: bytes
        media_key: bytes
        mimetype: str
        height: int
        width: int
        file_length: int
        def __init__(self, url: _Optional[str] = ..., file_sha256: _Optional[bytes] = ..., file_enc_sha256: _Optional[bytes] = ..., media_key: _Optional[bytes] = ..., mimetype: _Optional[str] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., file_length: _Optional[int] = ...) -> None: ...
    class LocationMessage(_message.Message):
        __slots__ = ("degrees_latitude", "degrees_longitude", "name", "address")
        DEGREES_LATITUDE_FIELD_NUMBER: _ClassVar[int]
        DEGREES_LONGITUDE_FIELD_NUMBER: _ClassVar[int]
        NAME_FIELD_NUMBER: _ClassVar[int]
        ADDRESS_FIELD_NUMBER: _ClassVar[int]
        degrees_latitude: float
        degrees_longitude: float
        name: str
        address: str
        def __init__(self, degrees_latitude: _Optional[float] = ..., degrees_longitude: _Optional[float] = ..., name: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...
    class ContactMessage(_message.Message):
        __slots__ = ("display_name", "vcard")
        DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
        VCARD_FIELD_NUMBER: _ClassVar[int]
        display_name: str
        vcard: str
        def __init__(self, display_name: _Optional[str] = ..., vcard: _Optional[str] = ...) -> None: ...
    class ContextInfo(_message.Message):
        __slots__ = ("stanza_id", "participant", "quoted_message", "remote_jid", "mentioned_jid")
        STANZA_ID_FIELD_NUMBER: _ClassVar[int]
        PARTICIPANT_FIELD_NUMBER: _ClassVar[int]
        QUOTED_MESSAGE_FIELD_NUMBER: _ClassVar[int]
        REMOTE_JID_FIELD_NUMBER: _ClassVar[int]
        MENTIONED_JID_FIELD_NUMBER: _ClassVar[int]
        stanza_id: str
        participant: str
        quoted_message: Message
        remote_jid: str
        mentioned_jid: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, stanza_id: _Optional[str] = ..., participant: _Optional[str] = ..., quoted_message: _Optional[_Union[Message, _Mapping]] = ..., remote_jid: _Optional[str] = ..., mentioned_jid: _Optional[_Iterable[str]] = ...) -> None: ...
    class ExtendedTextMessage(_message.Message):
        __slots__ = ("text", "context_info")
        TEXT_FIELD_NUMBER: _ClassVar[int]
        CONTEXT_INFO_FIELD_NUMBER: _ClassVar[int]
        text: str
        context_info: Message.ContextInfo
        def __init__(self, text: _Optional[str] = ..., context_info: _Optional[_Union[Message.ContextInfo, _Mapping]] = ...) -> None: ...
    class ReactionMessage(_message.Message):
        __slots__ = ("key", "text", "sender_timestamp_ms")
        KEY_FIELD_NUMBER: _ClassVar[int]
        TEXT_FIELD_NUMBER: _ClassVar[int]
        SENDER_TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
        key: MessageKey
        text: str
        sender_timestamp_ms: int
        def __init__(self, key: _Optional[_Union[MessageKey, _Mapping]] = ..., text: _Optional[str] = ..., sender_timestamp_ms: _Optional[int] = ...) -> None: ...
    class PollCreationMessage(_message.Message):
        __slots__ = ("enc_key", "name", "options", "selectable_options_count")
        class Option(_message.Message):
            __slots__ = ("option_name",)
            OPTION_NAME_FIELD_NUMBER: _ClassVar[int]
            option_name: str
            def __init__(self, option_name: _Optional[str] = ...) -> None: ...
        ENC_KEY_FIELD_NUMBER: _ClassVar[int]
        NAME_FIELD_NUMBER: _ClassVar[int]
        OPTIONS_FIELD_NUMBER: _ClassVar[int]
        SELECTABLE_OPTIONS_COUNT_FIELD_NUMBER: _ClassVar[int]
        enc_key: bytes
        name: str
        options: _containers.RepeatedCompositeFieldContainer[Message.PollCreationMessage.Option]
        selectable_options_count: int
        def __init__(self, enc_key: _Optional[bytes] = ..., name: _Optional[str] = ..., options: _Optional[_Iterable[_Union[Message.PollCreationMessage.Option, _Mapping]]] = ..., selectable_options_count: _Optional[int] = ...) -> None: ...
    class ProtocolMessage(_message.Message):
        __slots__ = ("key", "type")
        KEY_FIELD_NUMBER: _ClassVar[int]
        TYPE_FIELD_NUMBER: _ClassVar[int]
        key: MessageKey
        type: int
        def __init__(self, key: _Optional[_Union[MessageKey, _Mapping]] = ..., type: _Optional[int] = ...) -> None: ...
    class DeviceSentMessage(_message.Message):
        __slots__ = ("destination_jid", "message", "phash")
        DESTINATION_JID_FIELD_NUMBER: _ClassVar[int]
        MESSAGE_FIELD_NUMBER: _ClassVar[int]
        PHASH_FIELD_NUMBER: _ClassVar[int]
        destination_jid: str
        message: Message
        phash: str
        def __init__(self, destination_jid: _Optional[str] = ..., message: _Optional[_Union[Message, _Mapping]] = ..., phash: _Optional[str] = ...) -> None: ...
    class SenderKeyDistributionMessage(_message.Message):
        __slots__ = ("group_id", "axolotl_sender_key_distribution_message")
        GROUP_ID_FIELD_NUMBER: _ClassVar[int]
        AXOLOTL_SENDER_KEY_DISTRIBUTION_MESSAGE_FIELD_NUMBER: _ClassVar[int]
        group_id: str
        axolotl_sender_key_distribution_message: bytes
        def __init__(self, group_id: _Optional[str] = ..., axolotl_sender_key_distribution_message: _Optional[bytes] = ...) -> None: ...
    class FutureProofMessage(_message.Message):
        __slots__ = ("message",)
        MESSAGE_FIELD_NUMBER: _ClassVar[int]
        message: Message
        def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ...) -> None: ...
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    SENDER_KEY_DISTRIBUTION_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CONTACT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EXTENDED_TEXT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STICKER_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_SENT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_CONTEXT_INFO_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REACTION_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    POLL_CREATION_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    POLL_CREATION_MESSAGE_V3_FIELD_NUMBER: _ClassVar[int]
    conversation: str
    sender_key_distribution_message: Message.SenderKeyDistributionMessage
    image_message: Message.ImageMessage
    contact_message: Message.ContactMessage
    location_message: Message.LocationMessage
    extended_text_message: Message.ExtendedTextMessage
    document_message: Message.DocumentMessage
    audio_message: Message.AudioMessage
    video_message: Message.VideoMessage
    protocol_message: Message.ProtocolMessage
    sticker_message: Message.StickerMessage
    device_sent_message: Message.DeviceSentMessage
    message_context_info: MessageContextInfo
    ephemeral_message: Message.FutureProofMessage
    reaction_message: Message.ReactionMessage
    poll_creation_message: Message.PollCreationMessage
    poll_creation_message_v3: Message.PollCreationMessage
    def __init__(self, conversation: _Optional[str] = ..., sender_key_distribution_message: _Optional[_Union[Message.SenderKeyDistributionMessage, _Mapping]] = ..., image_message: _Optional[_Union[Message.ImageMessage, _Mapping]] = ..., contact_message: _Optional[_Union[Message.ContactMessage, _Mapping]] = ..., location_message: _Optional[_Union[Message.LocationMessage, _Mapping]] = ..., extended_text_message: _Optional[_Union[Message.ExtendedTextMessage, _Mapping]] = ..., document_message: _Optional[_Union[Message.DocumentMessage, _Mapping]] = ..., audio_message: _Optional[_Union[Message.AudioMessage, _Mapping]] = ..., video_message: _Optional[_Union[Message.VideoMessage, _Mapping]] = ..., protocol_message: _Optional[_Union[Message.ProtocolMessage, _Mapping]] = ..., sticker_message: _Optional[_Union[Message.StickerMessage, _Mapping]] = ..., device_sent_message: _Optional[_Union[Message.DeviceSentMessage, _Mapping]] = ..., message_context_info: _Optional[_Union[MessageContextInfo, _Mapping]] = ..., ephemeral_message: _Optional[_Union[Message.FutureProofMessage, _Mapping]] = ..., reaction_message: _Optional[_Union[Message.ReactionMessage, _Mapping]] = ..., poll_creation_message: _Optional[_Union[Message.PollCreationMessage, _Mapping]] = ..., poll_creation_message_v3: _Optional[_Union[Message.PollCreationMessage, _Mapping]] = ...) -> None: ...

class MessageContextInfo(_message.Message):
    __slots__ = ("message_secret",)
    MESSAGE_SECRET_FIELD_NUMBER: _ClassVar[int]
    message_secret: bytes
    def __init__(self, message_secret: _Optional[bytes] = ...) -> None: ...
