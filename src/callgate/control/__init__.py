"""Call control: carries out the agent's decisions (hang up, transfer) and runs the call's timers."""
