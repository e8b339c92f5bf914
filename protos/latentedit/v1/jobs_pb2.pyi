from latentedit.v1 import latentedit_pb2 as _latentedit_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Job(_message.Message):
    __slots__ = ("id", "reply_to", "deadline_unix_ms", "enqueued_unix_ms", "generate", "invert", "edit", "conditional_edit", "discover", "list_directions", "get_direction", "delete_direction", "put_direction", "score", "analyze", "evaluate", "stream_progress", "caller", "caller_admin")
    ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    INVERT_FIELD_NUMBER: _ClassVar[int]
    EDIT_FIELD_NUMBER: _ClassVar[int]
    CONDITIONAL_EDIT_FIELD_NUMBER: _ClassVar[int]
    DISCOVER_FIELD_NUMBER: _ClassVar[int]
    LIST_DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    GET_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    DELETE_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PUT_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ANALYZE_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_FIELD_NUMBER: _ClassVar[int]
    STREAM_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    CALLER_ADMIN_FIELD_NUMBER: _ClassVar[int]
    id: str
    reply_to: str
    deadline_unix_ms: int
    enqueued_unix_ms: int
    generate: _latentedit_pb2.GenerateRequest
    invert: _latentedit_pb2.InvertRequest
    edit: _latentedit_pb2.EditRequest
    conditional_edit: _latentedit_pb2.ConditionalEditRequest
    discover: _latentedit_pb2.DiscoverDirectionsRequest
    list_directions: _latentedit_pb2.ListDirectionsRequest
    get_direction: _latentedit_pb2.GetDirectionRequest
    delete_direction: _latentedit_pb2.DeleteDirectionRequest
    put_direction: _latentedit_pb2.PutDirectionRequest
    score: _latentedit_pb2.ScoreRequest
    analyze: _latentedit_pb2.AnalyzeRequest
    evaluate: _latentedit_pb2.EvaluateRequest
    stream_progress: bool
    caller: str
    caller_admin: bool
    def __init__(self, id: _Optional[str] = ..., reply_to: _Optional[str] = ..., deadline_unix_ms: _Optional[int] = ..., enqueued_unix_ms: _Optional[int] = ..., generate: _Optional[_Union[_latentedit_pb2.GenerateRequest, _Mapping]] = ..., invert: _Optional[_Union[_latentedit_pb2.InvertRequest, _Mapping]] = ..., edit: _Optional[_Union[_latentedit_pb2.EditRequest, _Mapping]] = ..., conditional_edit: _Optional[_Union[_latentedit_pb2.ConditionalEditRequest, _Mapping]] = ..., discover: _Optional[_Union[_latentedit_pb2.DiscoverDirectionsRequest, _Mapping]] = ..., list_directions: _Optional[_Union[_latentedit_pb2.ListDirectionsRequest, _Mapping]] = ..., get_direction: _Optional[_Union[_latentedit_pb2.GetDirectionRequest, _Mapping]] = ..., delete_direction: _Optional[_Union[_latentedit_pb2.DeleteDirectionRequest, _Mapping]] = ..., put_direction: _Optional[_Union[_latentedit_pb2.PutDirectionRequest, _Mapping]] = ..., score: _Optional[_Union[_latentedit_pb2.ScoreRequest, _Mapping]] = ..., analyze: _Optional[_Union[_latentedit_pb2.AnalyzeRequest, _Mapping]] = ..., evaluate: _Optional[_Union[_latentedit_pb2.EvaluateRequest, _Mapping]] = ..., stream_progress: _Optional[bool] = ..., caller: _Optional[str] = ..., caller_admin: _Optional[bool] = ...) -> None: ...

class JobError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("job_id", "worker", "error", "generate", "invert", "edit", "conditional_edit", "discover", "list_directions", "direction", "delete_direction", "score", "analyze", "progress", "evaluate")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    GENERATE_FIELD_NUMBER: _ClassVar[int]
    INVERT_FIELD_NUMBER: _ClassVar[int]
    EDIT_FIELD_NUMBER: _ClassVar[int]
    CONDITIONAL_EDIT_FIELD_NUMBER: _ClassVar[int]
    DISCOVER_FIELD_NUMBER: _ClassVar[int]
    LIST_DIRECTIONS_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    DELETE_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ANALYZE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    worker: str
    error: JobError
    generate: _latentedit_pb2.GenerateResponse
    invert: _latentedit_pb2.InvertResponse
    edit: _latentedit_pb2.EditResponse
    conditional_edit: _latentedit_pb2.ConditionalEditResponse
    discover: _latentedit_pb2.DiscoverDirectionsResponse
    list_directions: _latentedit_pb2.ListDirectionsResponse
    direction: _latentedit_pb2.Direction
    delete_direction: _latentedit_pb2.DeleteDirectionResponse
    score: _latentedit_pb2.ScoreResponse
    analyze: _latentedit_pb2.AnalyzeResponse
    progress: _latentedit_pb2.InvertProgress
    evaluate: _latentedit_pb2.EvaluateResponse
    def __init__(self, job_id: _Optional[str] = ..., worker: _Optional[str] = ..., error: _Optional[_Union[JobError, _Mapping]] = ..., generate: _Optional[_Union[_latentedit_pb2.GenerateResponse, _Mapping]] = ..., invert: _Optional[_Union[_latentedit_pb2.InvertResponse, _Mapping]] = ..., edit: _Optional[_Union[_latentedit_pb2.EditResponse, _Mapping]] = ..., conditional_edit: _Optional[_Union[_latentedit_pb2.ConditionalEditResponse, _Mapping]] = ..., discover: _Optional[_Union[_latentedit_pb2.DiscoverDirectionsResponse, _Mapping]] = ..., list_directions: _Optional[_Union[_latentedit_pb2.ListDirectionsResponse, _Mapping]] = ..., direction: _Optional[_Union[_latentedit_pb2.Direction, _Mapping]] = ..., delete_direction: _Optional[_Union[_latentedit_pb2.DeleteDirectionResponse, _Mapping]] = ..., score: _Optional[_Union[_latentedit_pb2.ScoreResponse, _Mapping]] = ..., analyze: _Optional[_Union[_latentedit_pb2.AnalyzeResponse, _Mapping]] = ..., progress: _Optional[_Union[_latentedit_pb2.InvertProgress, _Mapping]] = ..., evaluate: _Optional[_Union[_latentedit_pb2.EvaluateResponse, _Mapping]] = ...) -> None: ...
