#!/usr/bin/env bash
# Stage 1 of report_chain: text metrics computed with standard Unix tools.
#
# Reads the message body from $MIRROR_NEURON_INPUT_FILE (a JSON object with a "text"
# field), counts lines, words, characters and bytes with wc, finds the distinct and the
# most frequent words with tr/sort/uniq, and prints ONE plain JSON object on stdout.
# Plain JSON (no emit_messages/events/next_state/complete_job keys) is opaque to the
# runtime: it travels downstream inside the default output payload as sandbox.stdout.
set -euo pipefail

# Characters are counted as UTF-8 code points; sorting is byte-wise and deterministic.
export LC_ALL=C.UTF-8

# Private scratch file inside this run's staging directory (deleted with it).
text_file="$(mktemp ./text.XXXXXX)"
trap 'rm -f "$text_file"' EXIT

# Extract .text exactly (no trailing newline added); python3 is the JSON parser
# available everywhere the runtime runs, so no jq is needed.
python3 -c 'import json, sys; sys.stdout.write(json.load(open(sys.argv[1]))["text"])' \
  "$MIRROR_NEURON_INPUT_FILE" >"$text_file"

lines=$(wc -l <"$text_file")
words=$(wc -w <"$text_file")
chars=$(wc -m <"$text_file")
bytes=$(wc -c <"$text_file")

# One lower-cased ASCII word per line (letters and apostrophes), for the vocabulary.
word_list() {
  tr '[:upper:]' '[:lower:]' <"$text_file" | LC_ALL=C tr -cs "a-z'" '\n' | sed '/^$/d'
}
unique_words=$(word_list | LC_ALL=C sort -u | wc -l)
# Most frequent word; ties broken alphabetically so the answer is deterministic.
read -r top_count top_word < <(word_list | LC_ALL=C sort | uniq -c | LC_ALL=C sort -k1,1nr -k2,2 | head -n 1)

# wc pads with spaces on some platforms; $(( )) normalises to a bare integer.
printf '{"lines": %d, "words": %d, "chars": %d, "bytes": %d, "unique_words": %d, ' \
  "$((lines))" "$((words))" "$((chars))" "$((bytes))" "$((unique_words))"
printf '"top_word": "%s", "top_word_count": %d, "tool": "%s"}\n' \
  "$top_word" "$((top_count))" "wc/tr/sort/uniq"
