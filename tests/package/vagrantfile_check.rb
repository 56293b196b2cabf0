# Loads the Vagrantfile with a stand-in for Vagrant's configuration API and prints, as JSON,
# what it would do: the machines, their provider settings and provisioners. Also exits with
# the Vagrantfile's own message when a setting is missing. Used by test_package.sh.
require "json"

# Records every setting and call made on it, as nested hashes.
class Recorder
  attr_reader :settings, :calls

  def initialize
    @settings = {}
    @calls = []
    @children = {}
  end

  def to_h
    { "settings" => @settings, "calls" => @calls,
      "children" => @children.transform_values(&:to_h) }
  end

  def method_missing(name, *args, **kwargs, &block)
    key = name.to_s
    if key.end_with?("=")
      @settings[key.chomp("=")] = args.first
    elsif %w[define provider].include?(key)
      child = Recorder.new
      @children["#{key}:#{args.first}"] = child
      block&.call(child, child)
    elsif %w[provision].include?(key)
      @calls << { "provision" => args.first.to_s, "options" => kwargs }
    elsif args.empty? && kwargs.empty? && block.nil?
      @children[key] ||= Recorder.new
    else
      @calls << { key => [args, kwargs] }
    end
  end

  def respond_to_missing?(*) = true
end

module Vagrant
  @root = Recorder.new
  class << self
    attr_reader :root

    def configure(_version)
      yield @root
    end
  end
end

vagrantfile = ARGV.shift
load vagrantfile
puts JSON.generate(Vagrant.root.to_h)
