from cortask.cli import main

main()
