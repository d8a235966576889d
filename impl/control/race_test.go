//go:build race

package control

// raceOn: the race detector makes each line about ten times dearer.
const raceOn = true
