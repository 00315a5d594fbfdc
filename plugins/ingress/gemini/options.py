"""A Gemini request's options as canonical ones: `generationConfig` (sampling, length, stop,
JSON output and its schema), `tools` (function declarations) and `toolConfig`. Pure."""

from __future__ import annotations

from typing import Any

from modelway.errors import bad_request
from modelway.plugins.ingress.gemini.fields import camel, get, list_at, object_at, string_at

JSON = dict[str, Any]
_MODES_WITHOUT_NAMES = {"NONE": "none", "AUTO": "auto", "VALIDATED": "auto"}
_DROPPED_SCHEMA_KEYS = frozenset({"propertyOrdering", "example"})
_NUMBER = (int, float)
_GENERATION_FIELDS: tuple[tuple[str, str, type | tuple[type, ...]], ...] = (
    ("temperature", "temperature", _NUMBER),
    ("topP", "top_p", _NUMBER),
    ("candidateCount", "n", int),
    ("maxOutputTokens", "max_tokens", int),
    ("presencePenalty", "presence_penalty", _NUMBER),
    ("frequencyPenalty", "frequency_penalty", _NUMBER),
    ("seed", "seed", int),
)
_KIND_NAMES: dict[type | tuple[type, ...], str] = {_NUMBER: "a number", int: "an integer"}


def generation_params(config: Any) -> JSON:
    """OpenAI sampling, length, stop and format parameters from `generationConfig`."""
    if config is None:
        return {}
    config = object_at(config, "generationConfig")
    out: JSON = {}
    for source, target, kind in _GENERATION_FIELDS:
        value = get(config, source)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kind):
            where = f"generationConfig.{source}"
            raise bad_request(f"{where} must be {_KIND_NAMES[kind]}", param=where)
        out[target] = value
    top_k = get(config, "topK")
    if top_k is not None:
        out["top_k"] = whole_number(top_k, "generationConfig.topK")
    stop = get(config, "stopSequences")
    if stop:
        where = "generationConfig.stopSequences"
        stops = [stop] if isinstance(stop, str) else list_at(stop, where)
        if not all(isinstance(s, str) for s in stops):
            raise bad_request(f"{where} must be a list of strings", param=where)
        out["stop"] = stops
    out.update(response_format(config))
    _refuse_modalities(get(config, "responseModalities"))
    return out


def whole_number(value: Any, where: str) -> int:
    """A whole number (the google-genai SDK writes `topK` as a float: 40.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{where} must be a whole number", param=where)
    return value


def response_format(config: JSON) -> JSON:
    """`response_format` for `responseMimeType: application/json` and its schema."""
    if get(config, "responseMimeType") != "application/json":
        return {}
    schema = get(config, "responseJsonSchema")
    if schema is None:
        schema = get(config, "_responseJsonSchema")
    if schema is None and isinstance(get(config, "responseSchema"), dict):
        schema = json_schema(get(config, "responseSchema"))
    if not isinstance(schema, dict):
        return {"response_format": {"type": "json_object"}}
    spec = {"name": "response", "schema": schema}
    return {"response_format": {"type": "json_schema", "json_schema": spec}}


def _refuse_modalities(modalities: Any) -> None:
    where = "generationConfig.responseModalities"
    other = [m for m in list_at(modalities, where) if str(m).upper() != "TEXT"]
    if other:
        raise bad_request(
            f"responseModalities {other} cannot be produced through this gateway (text only)",
            param=where,
        )


def json_schema(schema: Any) -> Any:
    """A Gemini `Schema` (an OpenAPI 3.0 subset: `type: OBJECT`, `nullable`) as JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out: JSON = {}
    for key, value in schema.items():
        name = camel(key)
        if name in _DROPPED_SCHEMA_KEYS or name == "nullable":
            continue
        if name == "type":
            if isinstance(value, str) and value.upper() != "TYPE_UNSPECIFIED":
                out["type"] = value.lower()
        elif name == "properties" and isinstance(value, dict):
            out["properties"] = {prop: json_schema(sub) for prop, sub in value.items()}
        elif name in ("items", "not"):
            out[name] = json_schema(value)
        elif name == "anyOf" and isinstance(value, list):
            out["anyOf"] = [json_schema(sub) for sub in value]
        else:
            out[name] = value
    if get(schema, "nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def openai_tools(tools: Any) -> list[JSON]:
    """OpenAI function tools for every `functionDeclarations` entry; other tools are refused."""
    out: list[JSON] = []
    for index, tool in enumerate(list_at(tools, "tools")):
        tool = object_at(tool, f"tools[{index}]")
        for key in tool:
            if camel(key) != "functionDeclarations":
                raise bad_request(
                    f"tools[{index}].{camel(key)} is not supported through this gateway: "
                    "only functionDeclarations are",
                    param=f"tools[{index}].{camel(key)}",
                )
        declarations = list_at(get(tool, "functionDeclarations"), f"tools[{index}]")
        for number, declaration in enumerate(declarations):
            where = f"tools[{index}].functionDeclarations[{number}]"
            out.append(_function_tool(object_at(declaration, where), where))
    return out


def _function_tool(declaration: JSON, where: str) -> JSON:
    function: JSON = {"name": string_at(get(declaration, "name"), f"{where}.name")}
    if isinstance(get(declaration, "description"), str):
        function["description"] = get(declaration, "description")
    parameters = get(declaration, "parametersJsonSchema")
    if parameters is None and get(declaration, "parameters") is not None:
        parameters = json_schema(get(declaration, "parameters"))
    if isinstance(parameters, dict):
        function["parameters"] = parameters
    return {"type": "function", "function": function}


def tool_choice(config: Any) -> JSON:
    """`tool_choice` from `toolConfig.functionCallingConfig` (mode and allowed names)."""
    calling = get(config, "functionCallingConfig")
    if not isinstance(calling, dict):
        return {}
    mode = str(get(calling, "mode") or "AUTO").upper()
    where = "toolConfig.functionCallingConfig.allowedFunctionNames"
    listed = list_at(get(calling, "allowedFunctionNames"), where)
    names = [n for n in listed if isinstance(n, str)]
    if mode != "ANY":
        return {"tool_choice": _MODES_WITHOUT_NAMES.get(mode, "auto")}
    if not names:
        return {"tool_choice": "required"}
    if len(names) == 1:
        return {"tool_choice": {"type": "function", "function": {"name": names[0]}}}
    allowed = [{"type": "function", "function": {"name": name}} for name in names]
    return {
        "tool_choice": {
            "type": "allowed_tools",
            "allowed_tools": {"mode": "required", "tools": allowed},
        }
    }
