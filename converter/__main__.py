from mlconvert.cli import main

main()
