"""The local ServiceX backend: the client's own delivery path with the transformer in this process.

:class:`LocalServiceX` takes the place of the client's REST adapter
(:class:`servicex.servicex_adapter.ServiceXAdapter`) and :class:`LocalObjectStore`
that of its S3 adapter (:class:`servicex.minio_adapter.MinioAdapter`), as
servicex-local's adaptors do. Everything else is the servicex client's code:
the ``ServiceXSpec``, the ``Query`` that builds and hashes the transform
request, its status polling, the downloads and the query cache. The request's
selection string, the query agcframe built, is what the transformer runs.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from servicex.minio_adapter import MinioAdapter, _sanitize_filename
from servicex.models import ResultFile, ServiceXInfo, Status, TransformRequest, TransformStatus
from servicex.servicex_adapter import ServiceXAdapter, ServiceXFile

from agcframe.errors import describe_exception

from .transformer import TransformedFile, transform_file

__all__ = ["CODEGEN", "FailedFile", "LocalObjectStore", "LocalServiceX"]

CODEGEN = "uproot-raw"


@dataclass(frozen=True)
class FailedFile:
    """An input file whose transform raised, and the first line of why."""

    path: str
    reason: str


class LocalServiceX(ServiceXAdapter):
    """A ServiceX deployment in this process: transforms file lists with the UprootRaw transformer.

    Outputs land in ``storage``, the bucket :class:`LocalObjectStore` serves.
    """

    def __init__(self, storage: Path) -> None:
        super().__init__(url=f"local://{storage}")
        self.storage = storage
        self._status: dict[str, TransformStatus] = {}
        self._results: dict[str, list[ServiceXFile]] = {}
        #: per request: the transforms that succeeded (by input path) and the files that failed
        self.transformed: dict[str, dict[str, TransformedFile]] = {}
        self.failed: dict[str, list[FailedFile]] = {}

    async def get_servicex_info(self) -> ServiceXInfo:
        return ServiceXInfo.model_validate(
            {
                "app-version": "agcframe-local",
                "code-gen-image": {CODEGEN: "in-process"},
                "capabilities": ["poll_local_transformation_results"],
            }
        )

    async def submit_transform(self, transform_request: TransformRequest) -> str:
        if transform_request.codegen != CODEGEN:
            raise ValueError(f"the local ServiceX backend runs {CODEGEN} queries, not {transform_request.codegen}")
        if not transform_request.file_list:
            raise ValueError(f"the local ServiceX backend transforms file lists, not the dataset {transform_request.did}")
        request_id = str(uuid.uuid4())
        submitted = datetime.datetime.now(datetime.timezone.utc)
        await asyncio.to_thread(self._transform, request_id, transform_request)
        failed = len(self.failed[request_id])
        self._status[request_id] = TransformStatus.model_validate(
            {
                "request_id": request_id,
                "did": transform_request.did or ",".join(transform_request.file_list),
                "did_id": 0,
                "title": transform_request.title,
                "selection": transform_request.selection,
                "tree-name": None,
                "image": "in-process",
                "result-destination": transform_request.result_destination,
                "result-format": transform_request.result_format,
                "generated-code-cm": "none",
                "status": Status.complete,
                "app-version": "agcframe-local",
                "files": len(transform_request.file_list),
                "files-completed": len(transform_request.file_list) - failed,
                "files-failed": failed,
                "files-remaining": 0,
                "submit-time": submitted,
                "finish-time": datetime.datetime.now(datetime.timezone.utc),
            }
        )
        return request_id

    def _transform(self, request_id: str, request: TransformRequest) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        transformed: dict[str, TransformedFile] = {}
        failed: list[FailedFile] = []
        results: list[ServiceXFile] = []
        for path in request.file_list or ():
            object_name = f"{request_id}:{path.replace('/', ':')}"
            destination = self.storage / _sanitize_filename(object_name)
            try:
                transformed[path] = transform_file(request.selection, path, destination)
            except Exception as exc:  # a failed file is reported in the status, as ServiceX does
                destination.unlink(missing_ok=True)
                failed.append(FailedFile(path, describe_exception(exc)))
                continue
            results.append(
                ServiceXFile(
                    created_at=datetime.datetime.now(datetime.timezone.utc),
                    filename=object_name,
                    total_bytes=transformed[path].bytes_out,
                )
            )
        self.transformed[request_id] = transformed
        self.failed[request_id] = failed
        self._results[request_id] = results

    async def get_transform_status(self, request_id: str) -> TransformStatus:
        if request_id not in self._status:
            raise ValueError(f"Transform ID {request_id} not found")
        return self._status[request_id]

    async def get_transformation_results(
        self, request_id: str, later_than: datetime.datetime | None = None
    ) -> list[ServiceXFile]:
        if request_id not in self._results:
            raise ValueError(f"Request {request_id} not found")
        return [result for result in self._results[request_id] if later_than is None or result.created_at > later_than]


class LocalObjectStore(MinioAdapter):
    """The transformer's output directory in place of the object-store bucket."""

    def __init__(self, storage: Path) -> None:  # no S3 session: nothing to connect to
        self.storage = storage
        self.bucket = storage.name

    async def list_bucket(self) -> list[ResultFile]:
        return [
            ResultFile(filename=path.name, size=path.stat().st_size, extension=path.suffix.lstrip("."))
            for path in sorted(self.storage.iterdir())
        ]

    async def download_file(
        self, object_name: str, local_dir: str, shorten_filename: bool = False, expected_size: int | None = None
    ) -> Path:
        """Hard-link (or copy, across file systems) the object into ``local_dir``, named as the client names it."""
        source = self.storage / _sanitize_filename(object_name)
        os.makedirs(local_dir, exist_ok=True)
        name = self.hash_path(object_name) if shorten_filename else object_name
        destination = Path(local_dir) / _sanitize_filename(name)
        destination.unlink(missing_ok=True)
        try:
            os.link(source, destination)
        except OSError:
            shutil.copyfile(source, destination)
        if expected_size is not None and destination.stat().st_size != expected_size:
            raise RuntimeError(f"Download of {object_name} failed")
        return destination.resolve()

    async def get_signed_url(self, object_name: str) -> str:
        return (self.storage / _sanitize_filename(object_name)).resolve().as_uri()
