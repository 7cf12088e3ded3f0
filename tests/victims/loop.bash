# loop.bash: a bash victim for round-trip tests that runs only builtins:
# no child process, no pipe of its own. It counts, keeps a running sum and
# an array it checks, and every 20 iterations prints
#	bash N i=I sumok=1 arrok=1
# Between iterations it waits with `read -t 0.01` on its standard input,
# which the test keeps open and silent, so the loop runs about 100 times a
# second without burning a CPU.
i=0
s=0
n=0
arr=()
for ((k = 0; k < 1000; k++)); do arr[k]=$((k * 7)); done
echo "start 0 pid=$$"
while :; do
	i=$((i + 1))
	s=$((s + i))
	read -r -t 0.01 _ || :
	if ((i % 20 == 0)); then
		n=$((n + 1))
		sumok=0
		((s == i * (i + 1) / 2)) && sumok=1
		arrok=1
		for ((k = 0; k < 1000; k += 37)); do
			((arr[k] == k * 7)) || arrok=0
		done
		echo "bash $n i=$i sumok=$sumok arrok=$arrok"
	fi
done
