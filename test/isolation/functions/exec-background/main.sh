# Leaves a child in the background that keeps stdout open, then exits 0.
sleep 1000 &
echo '"started"'
