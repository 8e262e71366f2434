# Sourced by ./salas and ./test: make .venv on first use and keep it in step
# with pyproject.toml (reinstalls when that file changes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${1:-}"

pick_python() {
    for py in "${PYTHON:-}" python3 python3.13 python3.12 python3.11 python; do
        [ -n "$py" ] || continue
        if command -v "$py" >/dev/null 2>&1 &&
           "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    echo "salas needs Python 3.11 or newer on PATH" >&2
    return 1
}

stamp_of() {
    { cat "$ROOT/pyproject.toml"; echo "extras=$EXTRAS"; } | sha256sum | cut -c1-16
}

if [ ! -x "$VENV/bin/python" ]; then
    PY="$(pick_python)"
    echo "salas: creating $VENV with $PY" >&2
    "$PY" -m venv "$VENV"
fi
want="$(stamp_of)"
have="$(cat "$VENV/.salas-stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    echo "salas: installing into $VENV${EXTRAS:+ (extras: $EXTRAS)}" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    spec="$ROOT"
    [ -n "$EXTRAS" ] && spec="$ROOT[$EXTRAS]"
    "$VENV/bin/python" -m pip install --quiet -e "$spec" >&2
    echo "$want" > "$VENV/.salas-stamp"
fi
