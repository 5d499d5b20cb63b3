# Plots bench/run's results as ratios to the best peer: throughput (higher
# is better) and server CPU per GiB (lower is better), one row per transport,
# on a log scale so that 2× and 0.5× are as far from 1 (the best peer).
# usage: gnuplot -e "dir='OUT'" bench/plot.gp    (reads OUT/plot.vars and
# OUT/plot-TRANSPORT-{speed,cpu}.dat written by report.py)

load dir.'/plot.vars'
n = words(servers)
rows = words(transports)

set terminal pngcairo size 1800, 560 * rows font ",10"
set output dir.'/report.png'
set datafile missing "NaN"
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by -30 nomirror
set grid ytics
set key top left horizontal font ",9"
set logscale y
set yrange [0.02:50]
set ytics (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)

set multiplot layout rows, 2
do for [t = 1:rows] {
    tr = word(transports, t)
    set title tr.': throughput, median / best peer (min–max bars; higher is better)'
    plot for [i = 1:n] dir.'/plot-'.tr.'-speed.dat' \
        using (column(3 * i - 1)):(column(3 * i)):(column(3 * i + 1)):xtic(1) \
        title word(servers, i), 1 with lines lc "black" dt 2 notitle
    set title tr.': server CPU per GiB, median / best peer (lower is better)'
    plot for [i = 1:n] dir.'/plot-'.tr.'-cpu.dat' \
        using (column(3 * i - 1)):(column(3 * i)):(column(3 * i + 1)):xtic(1) \
        title word(servers, i), 1 with lines lc "black" dt 2 notitle
}
unset multiplot
