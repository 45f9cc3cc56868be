# Sourced by the scripts that drive the broker with confluent-kafka: makes sure the
# project's venv (compat-tests/.venv) exists with the compat suite's Python requirements,
# and sets VENV_PYTHON to its interpreter. Run from the repository root.
VENV=compat-tests/.venv
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c "import confluent_kafka" 2>/dev/null \
    || "$VENV/bin/pip" install --quiet -r compat-tests/python/requirements.txt
VENV_PYTHON="$VENV/bin/python"
