from archcheck.cli import main

main()
