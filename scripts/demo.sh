#!/usr/bin/env bash
# `make demo`: provision the environment 'demo' from the offline base image, log in through the written alias
# with the real OpenSSH client, save a training script inside, train SimpleNet through `devagent run`, and show
# the lab notebook.
# The demo keeps its ssh config and keys under build/demo so your own ~/.ssh is not touched; in real use,
# leave DEVAGENT_HOME and DEVAGENT_SSH_CONFIG unset and `ssh NAME` works directly.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
demo="$here/build/demo"
mkdir -p "$demo"
export DEVAGENT_HOME="$demo/home" DEVAGENT_SSH_CONFIG="$demo/ssh_config"
devagent="$here/.venv/bin/devagent"
workspace="$demo/workspace"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "devagent up demo"
"$devagent" up demo --base-image devagent-base:bookworm --workspace "$workspace" --memory 4g --cpus 2

step "ssh demo — through the alias written to $DEVAGENT_SSH_CONFIG"
ssh -F "$DEVAGENT_SSH_CONFIG" demo 'echo "logged in as $(id -un) (uid $(id -u)) on $(hostname)"; python -c "import torch; print(\"torch\", torch.__version__, \"cuda available:\", torch.cuda.is_available())"'

step "save a training script inside the environment"
ssh -F "$DEVAGENT_SSH_CONFIG" demo 'cat > ~/workspace/train.py <<PY
import torch
lr = 3e-4
model = torch.nn.Linear(4, 1)
print("ok", sum(p.numel() for p in model.parameters()))
PY
python ~/workspace/train.py'
sleep 1

step "train the seed's SimpleNet through devagent run (CPU here): one run section in the notebook"
cp "$here/examples/train_simplenet.py" "$workspace/train_simplenet.py"
ssh -F "$DEVAGENT_SSH_CONFIG" demo 'cd ~/workspace && devagent run -- python train_simplenet.py --epochs 3 --steps 30'

step "the saves journal and the lab notebook ($workspace/lab-notebook.md)"
for _ in $(seq 1 30); do grep -q 'GPU check' "$workspace/lab-notebook.md" 2>/dev/null && break; sleep 1; done
tail -n 3 "$workspace/.devagent/saves.jsonl" 2>/dev/null || true
echo
cat "$workspace/lab-notebook.md"

step "the environment is up"
"$devagent" ls
cat <<EOF

Connect from VS Code: add this line at the top of your ~/.ssh/config to see the demo alias there too
    Include $DEVAGENT_HOME/ssh_config
then Remote-SSH → Connect to Host → demo.   From a shell: ssh -F $DEVAGENT_SSH_CONFIG demo
Remove it with: make demo-clean   (the workspace $workspace stays)
EOF
