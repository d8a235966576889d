//go:build !race

package control

const raceOn = false
