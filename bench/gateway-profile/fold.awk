# Folds `perf script` output into one line per stack ("outer;...;inner count"), the input of
# inferno-flamegraph or flamegraph.pl. Frames are the symbol names, without offsets and DSOs.
# A sample's header ("comm pid time: period event:"), which some perf versions indent when the
# thread has no name: it starts a new stack.
/^\S/ || / [0-9]+\.[0-9]+: / { if (n) flush(); n = 0; next }
/^\s*$/ { if (n) flush(); n = 0; next }
{
    sym = $2
    for (i = 3; i < NF; i++) sym = sym " " $i
    if (NF < 3) sym = $2
    sub(/\+0x[0-9a-f]+$/, "", sym)
    if (sym == "" || sym == "[unknown]") sym = "[unknown]"
    stack[n++] = sym
}
END { if (n) flush() }
function flush(   s, i) {
    s = stack[n - 1]
    for (i = n - 2; i >= 0; i--) s = s ";" stack[i]
    count[s]++
}
END { for (s in count) print s, count[s] }
