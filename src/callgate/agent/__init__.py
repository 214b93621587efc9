"""One conversation: history, the model turn loop, the tool loop and the actions functions return."""
