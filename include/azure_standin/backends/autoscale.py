"""A small evaluator for Batch autoscale formulas (the subset the stand-in serves).

The language is Batch's (https://learn.microsoft.com/azure/batch/batch-automatic-scaling); the stand-in reads a
documented subset of it:

* statements ``$Var = expr;`` separated by ``;`` or newlines; ``//`` comments to the end of a line;
* numbers, ``+ - * /``, unary ``-`` and ``!``, parentheses, comparisons ``< <= > >= == !=``, ``&&``, ``||`` and the
  ternary ``cond ? a : b`` (true is any non-zero number);
* functions ``min``, ``max``, ``avg``, ``sum``, ``ceil``, ``floor`` (min/max/avg/sum take numbers and sample
  vectors, flattened);
* the service-defined read-only sample variables ``$PendingTasks``, ``$ActiveTasks``, ``$RunningTasks`` with
  ``.GetSample(n)``, ``.GetSample(TimeInterval_Minute * n[, pct])``, ``.GetSamplePercent(interval)`` and
  ``.Count()``; every sample is the current count (tasks of the pool's jobs: active, running, active + running),
  Batch takes one sample every 30 s, so an interval of k minutes gives 2k samples;
* the read-only ``$CurrentDedicatedNodes``, ``$CurrentLowPriorityNodes``, ``TimeInterval_Second`` / ``_Minute`` /
  ``_Hour`` / ``_Day`` and the deallocation keywords ``requeue``, ``terminate``, ``taskcompletion``,
  ``retaineddata``;
* the outputs ``$TargetDedicatedNodes`` and ``$TargetLowPriorityNodes`` (initially the pool's current targets) and
  ``$NodeDeallocationOption`` (initially ``requeue``, the resize default); any other ``$name`` is a user variable.

Results are rendered the way Batch answers (seen in Azure/doAzureParallel issue 215): the three outputs first, then
the user variables in name order, ``$name=value`` joined by ``;``. A formula the parser cannot read raises
`FormulaSyntaxError` (code AutoScalingFormulaSyntaxError, from Batch's error-code table "Batch Status and Error
Codes"); a formula that parses but fails while running (a user variable read before it is set, a division by zero,
arithmetic on a sample vector) raises `FormulaEvaluationError` (code AutoScalingFormulaEvaluationError: a guess).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

MAX_FORMULA_LENGTH = 8192          # BatchErrorCodeStrings.AutoScaleFormulaTooLong: "The maximum length is 8192"
SAMPLE_SECONDS = 30.0              # Batch's sampling interval for the service-defined sample variables
DEALLOCATION_KEYWORDS = ("requeue", "terminate", "taskcompletion", "retaineddata")
SAMPLE_VARIABLES = ("$PendingTasks", "$ActiveTasks", "$RunningTasks")
OUTPUTS = ("$TargetDedicatedNodes", "$TargetLowPriorityNodes", "$NodeDeallocationOption")
_READ_ONLY = ("$CurrentDedicatedNodes", "$CurrentLowPriorityNodes") + SAMPLE_VARIABLES
_TIME = {"timeinterval_second": 1.0, "timeinterval_minute": 60.0, "timeinterval_hour": 3600.0,
         "timeinterval_day": 86400.0}
_FUNCS = ("min", "max", "avg", "sum", "ceil", "floor")
_METHODS = ("getsample", "getsamplepercent", "count")


class FormulaError(Exception):
    code = "AutoScalingFormulaError"


class FormulaSyntaxError(FormulaError):
    code = "AutoScalingFormulaSyntaxError"


class FormulaEvaluationError(FormulaError):
    code = "AutoScalingFormulaEvaluationError"


class Interval(float):
    """A time interval in seconds (TimeInterval_Minute * 5)."""


@dataclass
class Inputs:
    """What a formula may read: the pool's current and target node counts and its jobs' task counts."""

    current_dedicated: int = 0
    current_low_priority: int = 0
    target_dedicated: int = 0
    target_low_priority: int = 0
    active_tasks: int = 0
    running_tasks: int = 0


@dataclass
class Result:
    target_dedicated: int
    target_low_priority: int
    deallocation: str
    variables: dict[str, Any] = field(default_factory=dict)

    def results(self) -> str:
        """``$TargetDedicatedNodes=4;$TargetLowPriorityNodes=0;$NodeDeallocationOption=requeue;$x=1``."""
        parts = [f"$TargetDedicatedNodes={self.target_dedicated}",
                 f"$TargetLowPriorityNodes={self.target_low_priority}", f"$NodeDeallocationOption={self.deallocation}"]
        for name in sorted(self.variables, key=str.lower):
            parts.append(f"{name}={_show(self.variables[name])}")
        return ";".join(parts)


def _show(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ",".join(_show(x) for x in v) + "]"
    if isinstance(v, str):
        return v
    return str(int(v)) if float(v).is_integer() else repr(float(v))


# -- parsing ------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:
    (?P<num>\d+(?:\.\d*)?|\.\d+)
  | (?P<var>\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|&&|\|\||[-+*/()?:,.;=<>!])
)""", re.VERBOSE)


def _tokens(text: str) -> tuple[list[tuple[str, str]], set[int]]:
    """The tokens, and the indexes of those that start a line (a newline may end a statement)."""
    text = re.sub(r"//[^\n]*", "", text).replace("\r", "")
    out: list[tuple[str, str]] = []
    line_starts: set[int] = set()
    pos = 0
    newline = True
    while pos < len(text):
        if text[pos] in " \t\n":
            newline = newline or text[pos] == "\n"
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FormulaSyntaxError(f"Unexpected character '{text[pos]}' at position {pos}.")
        if newline:
            line_starts.add(len(out))
            newline = False
        out.append((m.lastgroup, m.group(m.lastgroup)))
        pos = m.end()
    return out, line_starts


class _Parser:
    """Recursive descent into a small tree of tuples: ("num", v), ("var", name), ("name", word),
    ("call", fn, args), ("method", var, name, args), ("un", op, e), ("bin", op, a, b), ("if", c, a, b)."""

    def __init__(self, text: str):
        self.toks, self.line_starts = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str | None, str | None]:
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, want: str | None = None) -> tuple[str | None, str | None]:
        tok = self.peek()
        if want is not None and tok[1] != want:
            raise FormulaSyntaxError(f"Expected '{want}' but found '{tok[1] or 'end of formula'}'.")
        self.i += 1
        return tok

    def program(self) -> list[tuple[str, Any]]:
        stmts = []
        while self.peek()[0] is not None:
            if self.peek()[1] == ";":
                self.take()
                continue
            kind, name = self.take()
            if kind != "var":
                raise FormulaSyntaxError(f"A statement must assign a $variable; found '{name}'.")
            if name in _READ_ONLY:
                raise FormulaSyntaxError(f"{name} is a read-only service-defined variable.")
            self.take("=")
            stmts.append((name, self.expr()))
            if self.peek()[0] is not None and self.peek()[1] != ";" and self.i not in self.line_starts:
                raise FormulaSyntaxError(f"Expected ';' after the assignment to {name}, found '{self.peek()[1]}'.")
        if not stmts:
            raise FormulaSyntaxError("The formula has no assignment.")
        return stmts

    def expr(self):
        cond = self.binary(0)
        if self.peek()[1] == "?":
            self.take()
            a = self.expr()
            self.take(":")
            return ("if", cond, a, self.expr())
        return cond

    _LEVELS = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">="), ("+", "-"), ("*", "/"))

    def binary(self, level: int):
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek()[0] == "op" and self.peek()[1] in self._LEVELS[level]:
            op = self.take()[1]
            left = ("bin", op, left, self.binary(level + 1))
        return left

    def unary(self):
        if self.peek()[1] in ("-", "!", "+"):
            op = self.take()[1]
            return ("un", op, self.unary())
        return self.postfix()

    def args(self) -> list:
        self.take("(")
        out = []
        if self.peek()[1] != ")":
            out.append(self.expr())
            while self.peek()[1] == ",":
                self.take()
                out.append(self.expr())
        self.take(")")
        return out

    def postfix(self):
        kind, tok = self.take()
        if kind == "num":
            return ("num", float(tok))
        if kind == "op" and tok == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if kind == "var":
            if self.peek()[1] == ".":
                self.take()
                mkind, method = self.take()
                if mkind != "name" or method.lower() not in _METHODS:
                    raise FormulaSyntaxError(f"Unknown method '{method}' on {tok}.")
                if tok not in SAMPLE_VARIABLES:
                    raise FormulaSyntaxError(f"{tok} is not a sample variable; {method}() needs one of "
                                             f"{', '.join(SAMPLE_VARIABLES)}.")
                return ("method", tok, method.lower(), self.args())
            return ("var", tok)
        if kind == "name":
            low = tok.lower()
            if low in _FUNCS:
                return ("call", low, self.args())
            if low in _TIME or low in DEALLOCATION_KEYWORDS:
                return ("name", low)
            raise FormulaSyntaxError(f"Unknown identifier '{tok}'.")
        raise FormulaSyntaxError(f"Unexpected '{tok or 'end of formula'}'.")


def parse(formula: str) -> list[tuple[str, Any]]:
    """The formula's statements; raises FormulaSyntaxError."""
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaSyntaxError("The formula is empty.")
    return _Parser(formula).program()


# -- evaluation ---------------------------------------------------------------------------------------------

def _num(v: Any, what: str) -> float:
    if isinstance(v, list):
        raise FormulaEvaluationError(f"{what}: a sample vector cannot be used here; reduce it with avg(), max(), "
                                     "min() or sum().")
    if isinstance(v, str):
        raise FormulaEvaluationError(f"{what}: '{v}' is not a number.")
    return float(v)


def _flat(values: list) -> list[float]:
    out: list[float] = []
    for v in values:
        out.extend(_flat(v) if isinstance(v, list) else [_num(v, "argument")])
    return out


class _Eval:
    def __init__(self, inputs: Inputs):
        self.inputs = inputs
        self.vars: dict[str, Any] = {"$TargetDedicatedNodes": float(inputs.target_dedicated),
                                     "$TargetLowPriorityNodes": float(inputs.target_low_priority),
                                     "$NodeDeallocationOption": "requeue"}
        self.assigned: set[str] = set()

    def sample_value(self, name: str) -> float:
        i = self.inputs
        return float({"$ActiveTasks": i.active_tasks, "$RunningTasks": i.running_tasks,
                      "$PendingTasks": i.active_tasks + i.running_tasks}[name])

    def run(self, node) -> Any:
        kind = node[0]
        if kind == "num":
            return node[1]
        if kind == "name":
            return Interval(_TIME[node[1]]) if node[1] in _TIME else node[1]
        if kind == "var":
            name = node[1]
            if name == "$CurrentDedicatedNodes":
                return float(self.inputs.current_dedicated)
            if name == "$CurrentLowPriorityNodes":
                return float(self.inputs.current_low_priority)
            if name in SAMPLE_VARIABLES:
                raise FormulaEvaluationError(f"{name} is a sample variable: read it with {name}.GetSample(...).")
            if name not in self.vars:
                raise FormulaEvaluationError(f"The variable {name} is used before it is assigned.")
            return self.vars[name]
        if kind == "method":
            return self.method(node[1], node[2], [self.run(a) for a in node[3]])
        if kind == "call":
            return self.call(node[1], [self.run(a) for a in node[2]])
        if kind == "un":
            v = _num(self.run(node[2]), node[1])
            return -v if node[1] == "-" else (float(not v) if node[1] == "!" else v)
        if kind == "if":
            return self.run(node[2]) if _num(self.run(node[1]), "?:") else self.run(node[3])
        return self.binary(node[1], self.run(node[2]), self.run(node[3]))

    def binary(self, op: str, a: Any, b: Any) -> Any:
        if op in ("==", "!=") and isinstance(a, str) and isinstance(b, str):
            return float((a == b) == (op == "=="))
        x, y = _num(a, op), _num(b, op)
        if op == "/":
            if y == 0:
                raise FormulaEvaluationError("Division by zero.")
            return x / y
        out = {"+": x + y, "-": x - y, "*": x * y, "<": float(x < y), "<=": float(x <= y), ">": float(x > y),
               ">=": float(x >= y), "==": float(x == y), "!=": float(x != y),
               "&&": float(bool(x) and bool(y)), "||": float(bool(x) or bool(y))}[op]
        if op in "+-*" and (isinstance(a, Interval) or isinstance(b, Interval)):
            return Interval(out)
        return out

    def method(self, var: str, name: str, args: list) -> Any:
        value = self.sample_value(var)
        if name == "count":
            return 1.0
        if not args or len(args) > 2:
            raise FormulaEvaluationError(f"{var}.{name}() takes an interval or a sample count (and a percentage).")
        span = args[0]
        n = max(1, int(span / SAMPLE_SECONDS)) if isinstance(span, Interval) else int(_num(span, name))
        if n < 1:
            raise FormulaEvaluationError(f"{var}.{name}(): the sample count must be at least 1.")
        if name == "getsamplepercent":
            return 100.0       # every sample is there: the stand-in's samples are the current count
        return [value] * n

    def call(self, fn: str, args: list) -> float:
        if fn in ("ceil", "floor"):
            if len(args) != 1:
                raise FormulaEvaluationError(f"{fn}() takes one argument.")
            return float((math.ceil if fn == "ceil" else math.floor)(_num(args[0], fn)))
        values = _flat(args)
        if not values:
            raise FormulaEvaluationError(f"{fn}() needs at least one value.")
        return {"min": min, "max": max, "sum": sum, "avg": lambda v: sum(v) / len(v)}[fn](values)


def _target(v: Any, name: str) -> int:
    n = _num(v, name)
    if n != n or n in (math.inf, -math.inf):
        raise FormulaEvaluationError(f"{name} is not a finite number.")
    return max(0, int(n))     # Batch wants a whole, non-negative count: truncated (a guess)


def evaluate(formula: str, inputs: Inputs) -> Result:
    """Run the formula; raises FormulaSyntaxError or FormulaEvaluationError."""
    stmts = parse(formula)
    ev = _Eval(inputs)
    for name, node in stmts:
        ev.vars[name] = ev.run(node)
        ev.assigned.add(name)
    dealloc = ev.vars["$NodeDeallocationOption"]
    if not isinstance(dealloc, str) or dealloc not in DEALLOCATION_KEYWORDS:
        raise FormulaEvaluationError(f"$NodeDeallocationOption must be one of {', '.join(DEALLOCATION_KEYWORDS)}.")
    user = {k: v for k, v in ev.vars.items() if k not in OUTPUTS and k in ev.assigned}
    return Result(_target(ev.vars["$TargetDedicatedNodes"], "$TargetDedicatedNodes"),
                  _target(ev.vars["$TargetLowPriorityNodes"], "$TargetLowPriorityNodes"), dealloc, user)
