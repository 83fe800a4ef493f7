#!/usr/bin/env bash
# Every benchmark in sequence, on a machine doing nothing else; prints each one's figures.
# Usage: bench/run_all.sh [LOG]   (needs the shared data: STORE_AGENT_DATA, default ../shared/data)
set -uo pipefail
cd "$(dirname "$0")/.."
export STORE_AGENT_DATA="${STORE_AGENT_DATA:-$(cd .. && pwd)/shared/data}"
py=.venv/bin/python
log="${1:-/dev/stdout}"
{
    echo "# $(date -u +%FT%TZ) $(uname -m) $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
    for cmd in \
        "bench/startup_bench.py --runs 5 --settle 5" \
        "bench/delivery_bench.py --events 20000 --reps 5" \
        "bench/faults_bench.py" \
        "bench/trust_bench.py" \
        "bench/fleet_load.py --terminals 300 --rate 2 --seconds 20" \
        "bench/fleet_load.py --terminals 300 --rate 8 --seconds 15" \
        "bench/fleet_load.py --terminals 300 --backlog 30000" \
        "bench/face_bench.py" \
        "bench/people_fps.py" \
        "bench/people_counting.py" \
        "bench/product_embed.py" \
        "bench/product_search.py" \
        "bench/product_accuracy.py --configs default" \
        "bench/speech_rtf.py --engine vosk-ko-grammar" \
        "bench/speech_rtf.py --engine pocketsphinx-en-grammar" \
        "bench/speech_rtf.py --engine whisper-zh" \
        "bench/speech_rtf.py --engine whisper-en" \
        "bench/speech_names.py" \
        "bench/whole_terminal.py --seconds 60 --each --cpu-limit --breakdown"; do
        echo; echo "## $cmd"
        $py $cmd 2>&1 | grep -v "^WARNING\|Warning"
    done
} | tee -a "$log"
