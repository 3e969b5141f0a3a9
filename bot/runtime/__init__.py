"""The running bot: bootstrap (the one module that wires handlers), the click journal, pools, the web apps, serving, metrics."""
