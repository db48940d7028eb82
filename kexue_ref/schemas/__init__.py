"""JSON Schemas (draft 2020-12) of the two JSON documents kexue_ref writes.

* ``manifest``: ``tables/MANIFEST.json``, format version 2 (:mod:`kexue_ref.tables`): the
  header (``format_version``, library and dependency versions, the rules in words, the
  tolerance table by dtype then kind) and ``files``, one entry per
  ``<topic>/<function>__<case>.npz`` with ``op``, ``case``, ``case_id``, ``tier``, ``seed``,
  ``call``, ``params``, ``flags``, ``note``, ``source``, ``members`` (by ``<kind>.<name>``:
  ``kind``, ``shape``, ``dtype``; float members add ``scale``, ``verify_atol``,
  ``scale_reason``; computed members may carry a ``certificate`` from ``kexue-ref tables
  certify``), ``differentiable_inputs``, ``tolerances`` (by kind then dtype) and ``sha256``.
* ``check_report``: what ``kexue-ref check ... --json`` prints
  (:meth:`kexue_ref.testing.Report.to_dict`: the options of the run, the counts, the notes
  and the diagnosis), one ``results`` item per case and one ``comparisons`` item per array.

Conventions: non-finite floats appear as the strings ``"inf"``, ``"-inf"``, ``"nan"``;
objects whose fields are ours are closed (``additionalProperties: false``). The schema files
ship in the package (``kexue_ref/schemas/<name>.schema.json``). Validating needs the
``jsonschema`` package (the ``test`` extra); loading a schema does not.

>>> sorted(NAMES)
['check_report', 'manifest']
>>> load("manifest")["properties"]["format_version"]
{'const': 2, 'description': 'kexue_ref.TABLE_FORMAT_VERSION; bumped on any layout change.'}
"""
import functools
import importlib.resources
import json

__all__ = ["NAMES", "load", "validate"]

#: The published schemas, by short name (the file is ``<name>.schema.json``).
NAMES = ("manifest", "check_report")


def _check_name(name):
    if name not in NAMES:
        raise ValueError(f"no schema named {name!r}; known: {', '.join(NAMES)}")


@functools.lru_cache(maxsize=None)
def _text(name):
    path = importlib.resources.files(__name__).joinpath(f"{name}.schema.json")
    return path.read_text(encoding="utf-8")


def load(name):
    """The schema ``name`` (``"manifest"`` or ``"check_report"``) as a fresh dict.

    Raises ``ValueError`` for an unknown name.
    """
    _check_name(name)
    return json.loads(_text(name))


def validate(instance, name):
    """Validate a parsed JSON document against the schema ``name``; returns None when valid.

    Parameters
    ----------
    instance : the document, as ``json.load`` returns it (a manifest, or a check report).
    name : ``"manifest"`` or ``"check_report"``.

    Raises ``jsonschema.ValidationError`` (the most relevant error, with its path) when the
    document does not conform, ``ValueError`` for an unknown schema name, and ``ImportError``
    when ``jsonschema`` (>= 4, for draft 2020-12) is not installed.
    """
    schema = load(name)
    try:
        import jsonschema
    except ImportError as exc:
        raise ImportError("kexue_ref.schemas.validate needs jsonschema >= 4: install the `test` "
                          "extra (pip install 'kexue-ref[test]') or pip install 'jsonschema>=4'"
                          ) from exc
    jsonschema.validate(instance, schema, cls=jsonschema.Draft202012Validator)
