from ftx.cli import main

main()
