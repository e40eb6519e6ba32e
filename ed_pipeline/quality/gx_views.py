"""Data Docs page views that compile GX's Jinja templates once per process (named in the site's config by
`gx_runtime`, which GX imports them through; importing this module imports GX).

GX makes a Jinja `Environment` for every page it renders, and a new environment compiles every template it uses
again: 1.1-1.3 s of the 1.8-2.0 s that the seven sources' Data Docs took per refresh. Jinja's bytecode cache,
shared by the views here, keeps each template's compiled code (checked against the template's source)."""

from __future__ import annotations

import jinja2
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView


class CompiledTemplates(jinja2.BytecodeCache):
    """Jinja's compiled templates, in memory for the life of the process."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)  # ignored by Jinja if the template's source has changed since

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = CompiledTemplates()


class _SharedTemplates:
    """A view whose Jinja environment loads and stores compiled templates in `TEMPLATES`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = TEMPLATES


class CompiledPageView(_SharedTemplates, DefaultJinjaPageView):
    pass


class CompiledIndexPageView(_SharedTemplates, DefaultJinjaIndexPageView):
    pass
